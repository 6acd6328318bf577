import { useEffect, useState } from "react";
import type { StreamState } from "../hooks/useStream";
import { isActive } from "../hooks/useStream";
import { useI18n } from "../i18n/I18nContext";

export function ordinalPosition(position: number, language: string): string {
  if (language === "zh") return String(position);
  const suffix = position % 10 === 1 && position !== 11 ? "st" : position % 10 === 2 && position !== 12 ? "nd" : position % 10 === 3 && position !== 13 ? "rd" : "th";
  return `${position}${suffix}`;
}

/** Queue position while waiting; elapsed time and tokens/s while generating; the total when done. */
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
    const elapsed = state.startedAt === null ? 0 : (now - state.startedAt) / 1000;
    const rate = elapsed > 0 ? (state.tokens / elapsed).toFixed(1) : "0.0";
    text = `${t("status.running")} · ${t("status.elapsed", { seconds: seconds(state.startedAt, now) })} · ${t("status.speed", { rate })}`;
  }
  if (state.status === "done") text = t("status.done", { seconds: seconds(state.sentAt, end) });
  if (state.status === "cancelled") text = t("status.cancelled");
  if (!text) return null;
  return (
    <p className="status" role="status" data-status={state.status}>
      {text}
    </p>
  );
}
