import type { TaskName, TaskOptions } from "../api/client";
import { useI18n } from "../i18n/I18nContext";
import type { MessageKey } from "../i18n/messages";

export type Options = Required<Pick<TaskOptions, "detail" | "resolution">> & {
  engine: NonNullable<TaskOptions["engine"]>;
  maxNewTokens: number | null;
};

export const DEFAULT_OPTIONS: Options = { detail: "brief", resolution: "auto", engine: "auto", maxNewTokens: null };

/** A labelled choice among fixed values, each shown by its message key. */
function Choice<V extends string>({
  label,
  value,
  choices,
  onChange,
}: {
  label: MessageKey;
  value: V;
  choices: [V, MessageKey][];
  onChange: (value: V) => void;
}) {
  const { t } = useI18n();
  return (
    <label>
      {t(label)}
      <select value={value} onChange={(e) => onChange(e.target.value as V)}>
        {choices.map(([choice, name]) => (
          <option key={choice} value={choice}>
            {t(name)}
          </option>
        ))}
      </select>
    </label>
  );
}

/** The options that apply to the current task. */
export function OptionsBar({
  task,
  options,
  onChange,
}: {
  task: TaskName;
  options: Options;
  onChange: (options: Options) => void;
}) {
  const { t } = useI18n();
  const set = (change: Partial<Options>) => onChange({ ...options, ...change });
  return (
    <div className="options">
      {task === "describe" && (
        <Choice
          label="options.detail"
          value={options.detail}
          choices={[["brief", "options.brief"], ["detailed", "options.detailed"]]}
          onChange={(detail) => set({ detail })}
        />
      )}
      {task === "ocr" && (
        <Choice
          label="options.engine"
          value={options.engine}
          choices={[["auto", "options.engine.auto"], ["fast", "options.engine.fast"], ["vlm", "options.engine.vlm"]]}
          onChange={(engine) => set({ engine })}
        />
      )}
      <Choice
        label="options.resolution"
        value={options.resolution}
        choices={[["low", "options.resolution.low"], ["auto", "options.resolution.auto"], ["high", "options.resolution.high"]]}
        onChange={(resolution) => set({ resolution })}
      />
      <label>
        {t("options.maxTokens")}
        <input
          type="number"
          min={1}
          placeholder="auto"
          value={options.maxNewTokens ?? ""}
          onChange={(e) => set({ maxNewTokens: e.target.value ? Number(e.target.value) : null })}
        />
      </label>
    </div>
  );
}

export function toTaskOptions(task: TaskName, options: Options): TaskOptions {
  return {
    max_new_tokens: options.maxNewTokens,
    resolution: options.resolution,
    detail: options.detail,
    engine: task === "ocr" ? options.engine : null,
    max_pixels: null,
    temperature: 0,
    top_p: 1,
  };
}
