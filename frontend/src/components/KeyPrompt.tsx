import { useState, type FormEvent } from "react";
import type { KeyState } from "../hooks/useApiKey";
import { useI18n } from "../i18n/I18nContext";

/** Asks for the API key when the server wants one; says so when a key was refused. */
export function KeyPrompt({ state, onSubmit }: { state: KeyState; onSubmit: (key: string) => void }) {
  const { t } = useI18n();
  const [key, setKey] = useState("");
  if (state !== "needed" && state !== "refused") return null;
  const submit = (event: FormEvent) => {
    event.preventDefault();
    if (key.trim()) onSubmit(key);
  };
  return (
    <form className="key-prompt" onSubmit={submit} aria-label={t("key.title")}>
      <p>{t("key.explain")}</p>
      {state === "refused" && (
        <p className="error" role="alert">
          {t("key.refused")}
        </p>
      )}
      <label>
        {t("key.label")}
        <input type="password" autoComplete="off" value={key} onChange={(event) => setKey(event.target.value)} />
      </label>
      <button type="submit" className="primary">
        {t("key.submit")}
      </button>
    </form>
  );
}
