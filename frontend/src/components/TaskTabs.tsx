import type { TaskName } from "../api/client";
import { useI18n } from "../i18n/I18nContext";

const TASKS: TaskName[] = ["ocr", "describe", "ask"];

export function TaskTabs({ task, onChange }: { task: TaskName; onChange: (task: TaskName) => void }) {
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
