import type { UiTask } from "../api/client";
import { useI18n } from "../i18n/I18nContext";

const TASKS: UiTask[] = ["ocr", "describe", "ask", "extract"];

export function TaskTabs({ task, onChange }: { task: UiTask; onChange: (task: UiTask) => void }) {
  const { t } = useI18n();
  return (
    <div className="tabs" role="tablist">
      {TASKS.map((name) => (
        <button
          key={name}
          type="button"
          role="tab"
          aria-selected={task === name}
          className={task === name ? "tab active" : "tab"}
          onClick={() => onChange(name)}
        >
          {t(`task.${name}`)}
        </button>
      ))}
    </div>
  );
}
