import { useI18n } from "../i18n/I18nContext";
import type { Language } from "../i18n/messages";

const NAMES: Record<Language, string> = { en: "English", zh: "简体中文" };

export function LanguageSwitch() {
  const { language, setLanguage, t } = useI18n();
  return (
    <label className="language">
      <span className="visually-hidden">{t("language.label")}</span>
      <select value={language} onChange={(event) => setLanguage(event.target.value as Language)}>
        {(Object.keys(NAMES) as Language[]).map((code) => (
          <option key={code} value={code}>
            {NAMES[code]}
          </option>
        ))}
      </select>
    </label>
  );
}
