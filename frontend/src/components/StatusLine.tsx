import { useEffect, useState } from "react";
import type { OcrResult, TaskResult } from "../api/client";
import type { StreamState } from "../hooks/useStream";
import { isActive } from "../hooks/useStream";
import { useI18n } from "../i18n/I18nContext";

export function ordinalPosition(position: number, language: string): string {
  if (language === "zh") return String(position);
  const suffix = position % 10 === 1 && position !== 11 ? "st" : position % 10 === 2 && position !== 12 ? "nd" : position % 10 === 3 && position !== 13 ? "rd" : "th";
  return `${position}${suffix}`;
}

/** Generation speed as the server measured it: tokens after the first over the decode time. */
export function decodeRate(result: TaskResult | OcrResult | null): number | null {
  if (!result || result.usage.completion_tokens < 2 || result.timings.decode_ms <= 0) return null;
  return (result.usage.completion_tokens - 1) / (result.timings.decode_ms / 1000);
}

/** Queue position while waiting; elapsed time while generating; the total and the speed when done. */
export function StatusLine({ state }: { state: StreamState }) {
  const { t, language } = useI18n();
  const [now, setNow] = useState(() => Date.now());
  const active = isActive(state.status);
  useEffect(() => {
    if (!active) return;
    const timer = setInterval(() => setNow(Date.now()), 250);
    return () => clearInterval(timer);
  }, [active]);

  const seconds = (from: number | null, to: number) => (from === null ? "0.0" : ((to - from) / 1000).toFixed(1));
  const end = state.finishedAt ?? now;
  let text = "";
  if (state.status === "connecting") text = t("status.connecting");
  if (state.status === "queued") text = t("status.queued", { position: ordinalPosition(state.position ?? 1, language) });
  if (state.status === "running") {
    text = `${t("status.running")} · ${t("status.elapsed", { seconds: seconds(state.startedAt, now) })}`;
    if (state.page) text += ` · ${t("status.page", state.page)}`;
  }
  if (state.status === "done") {
    const rate = decodeRate(state.result);
    text = t("status.done", { seconds: seconds(state.sentAt, end) });
    if (rate !== null) text += ` · ${t("status.speed", { rate: rate.toFixed(1) })}`;
  }
  if (state.status === "cancelled") text = t("status.cancelled");
  if (!text) return null;
  return (
    <p className="status" role="status" data-status={state.status}>
      {text}
    </p>
  );
}
