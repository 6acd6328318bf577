import { useEffect, useState } from "react";
import { api, type TaskName } from "../api/client";
import { useI18n } from "../i18n/I18nContext";
import type { Options } from "./OptionsBar";

interface Expected {
  seconds: number;
  visualTokens: number;
  engine: "fast" | "vlm";
}

/** What the task will cost before it runs: visual tokens and expected seconds (POST /api/v1/estimate). */
export function EstimateHint({ task, imageIds, options }: { task: TaskName; imageIds: string[]; options: Options }) {
  const { t } = useI18n();
  const [expected, setExpected] = useState<Expected | null>(null);
  const key = JSON.stringify([task, imageIds, options]);
  useEffect(() => {
    setExpected(null);
    if (imageIds.length === 0) return;
    let current = true;
    const timer = setTimeout(async () => {
      const form = new FormData();
      form.append("task", task);
      imageIds.forEach((id) => form.append("image_ids", id));
      form.append("resolution", options.resolution);
      form.append("detail", options.detail);
      if (task === "ocr") form.append("engine", options.engine);
      if (options.maxNewTokens) form.append("max_new_tokens", String(options.maxNewTokens));
      const { data } = await api.POST("/api/v1/estimate", { body: form as never, bodySerializer: () => form });
      if (current && data) {
        setExpected({ seconds: data.total_s, visualTokens: data.image_tokens, engine: data.engine });
      }
    }, 250);
    return () => {
      current = false;
      clearTimeout(timer);
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps -- `key` is the content of the inputs
  }, [key]);
  if (!expected) return null;
  return (
    <span className="hint" data-testid="estimate">
      {expected.engine === "fast"
        ? t("estimate.fast", { seconds: expected.seconds.toFixed(1) })
        : t("estimate.vlm", { seconds: Math.round(expected.seconds), tokens: expected.visualTokens })}
    </span>
  );
}
