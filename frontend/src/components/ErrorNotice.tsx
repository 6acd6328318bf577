import type { ErrorBody } from "../api/client";
import type { ReadinessState } from "../hooks/useReadiness";
import { useI18n, type Translate } from "../i18n/I18nContext";

/** What went wrong, in words a user can act on. */
export function explainError(error: ErrorBody, readiness: ReadinessState, t: Translate): string {
  if (error.code === "network_error") return t("error.server");
  if (error.code === "connection_lost") return t("error.connection");
  if (error.code === "queue_full") return t("error.queueFull");
  if (error.code === "model_unavailable") {
    const reason = readiness.kind === "known" ? readiness.readiness.vlm.reason : null;
    return t("error.notReady", { reason: reason ?? error.message });
  }
  return error.message;
}

export function ErrorNotice({ error, readiness }: { error: ErrorBody; readiness: ReadinessState }) {
  const { t } = useI18n();
  return (
    <div className="error" role="alert">
      {explainError(error, readiness, t)}
    </div>
  );
}
