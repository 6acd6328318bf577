import type { ReadinessState } from "../hooks/useReadiness";
import { useI18n } from "../i18n/I18nContext";

/** Each engine's state at a glance; the reason shows on hover. */
export function ReadyBadge({ state }: { state: ReadinessState }) {
  const { t } = useI18n();
  if (state.kind !== "known") {
    return <span className="badge badge-failed">{state.kind === "unreachable" ? t("error.server") : "…"}</span>;
  }
  const engines = [
    ["vlm", state.readiness.vlm],
    ["fast_ocr", state.readiness.fast_ocr],
  ] as const;
  return (
    <span className="badges">
      {engines.map(([name, engine]) => (
        <span key={name} className={`badge badge-${engine.status}`} title={engine.reason ?? engine.model ?? undefined}>
          {t(`ready.${name}`)}: {t(`ready.${engine.status}`)}
        </span>
      ))}
    </span>
  );
}
