import type { TaskName, TaskOptions } from "../api/client";
import { useI18n } from "../i18n/I18nContext";

export type Options = Required<Pick<TaskOptions, "detail" | "resolution">> & {
  engine: NonNullable<TaskOptions["engine"]>;
  maxNewTokens: number | null;
};

export const DEFAULT_OPTIONS: Options = { detail: "brief", resolution: "auto", engine: "auto", maxNewTokens: null };

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
        <label>
          {t("options.detail")}
          <select value={options.detail} onChange={(e) => set({ detail: e.target.value as Options["detail"] })}>
            <option value="brief">{t("options.brief")}</option>
            <option value="detailed">{t("options.detailed")}</option>
          </select>
        </label>
      )}
      {task === "ocr" && (
        <label>
          {t("options.engine")}
          <select value={options.engine} onChange={(e) => set({ engine: e.target.value as Options["engine"] })}>
            <option value="auto">{t("options.engine.auto")}</option>
            <option value="fast">{t("options.engine.fast")}</option>
            <option value="vlm">{t("options.engine.vlm")}</option>
          </select>
        </label>
      )}
      <label>
        {t("options.resolution")}
        <select
          value={options.resolution}
          onChange={(e) => set({ resolution: e.target.value as Options["resolution"] })}
        >
          <option value="low">{t("options.resolution.low")}</option>
          <option value="auto">{t("options.resolution.auto")}</option>
          <option value="high">{t("options.resolution.high")}</option>
        </select>
      </label>
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
