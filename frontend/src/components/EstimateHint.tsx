import { useEffect, useState } from "react";
import { api, ROUTE_HEADER, toFormData, type TaskName } from "../api/client";
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
      const body = {
        task,
        image_ids: imageIds,
        resolution: options.resolution,
        detail: options.detail,
        engine: task === "ocr" ? options.engine : null,
        max_new_tokens: options.maxNewTokens || null,
      };
      const { data } = await api.POST("/api/v1/estimate", {
        body,
        bodySerializer: toFormData,
        headers: { [ROUTE_HEADER]: imageIds[0] }, // replicas: where this image is cached
      });
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
