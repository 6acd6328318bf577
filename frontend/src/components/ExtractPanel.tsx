import { useState } from "react";
import { api, errorOf, toFormData, type ErrorBody, type ExtractResult, type Preset } from "../api/client";
import { useI18n } from "../i18n/I18nContext";
import { checkSchema, lineItems, scalarFields, toCsv } from "./extractData";

const PRESETS: Preset[] = ["invoice", "receipt", "business_card", "product_page", "table"];
const EXAMPLE_SCHEMA = '{\n  "type": "object",\n  "properties": {"title": {"type": "string"}},\n  "required": ["title"]\n}';

export interface ExtractSource {
  image_id?: string;
  document_id?: string;
  pages?: string;
}

function download(name: string, text: string, type: string) {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([text], { type }));
  link.download = name;
  link.click();
  URL.revokeObjectURL(link.href);
}

/** Fields as JSON: a preset or a schema typed here (checked as you type), the result as a table and as JSON. */
export function ExtractPanel({ source, maxTokens }: { source: ExtractSource | null; maxTokens: number | null }) {
  const { t } = useI18n();
  const [preset, setPreset] = useState<Preset | "custom">("invoice");
  const [schemaText, setSchemaText] = useState(EXAMPLE_SCHEMA);
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<ExtractResult | null>(null);
  const [error, setError] = useState<ErrorBody | null>(null);
  const check = preset === "custom" ? checkSchema(schemaText) : null;

  const run = async () => {
    if (!source) return;
    setBusy(true);
    setError(null);
    const chosen = preset === "custom" ? { json_schema: schemaText } : { preset };
    const body = { ...source, ...chosen, max_new_tokens: maxTokens ?? undefined };
    const { data, error: refused } = await api.POST("/api/v1/extract", { body, bodySerializer: toFormData });
    setBusy(false);
    setResult(data ?? null);
    if (!data) setError(errorOf(refused, "extraction failed"));
  };

  const items = result ? lineItems(result.data) : null;
  const json = result ? JSON.stringify(result.data, null, 2) : "";
  return (
    <div className="extract" data-testid="extract">
      <div className="options">
        <label>
          {t("extract.preset")}{" "}
          <select value={preset} onChange={(event) => setPreset(event.target.value as Preset | "custom")}>
            {PRESETS.map((name) => (
              <option key={name} value={name}>
                {t(`extract.preset.${name}`)}
              </option>
            ))}
            <option value="custom">{t("extract.preset.custom")}</option>
          </select>
        </label>
        <button type="button" className="primary" disabled={!source || busy || (check !== null && check.error !== null)} onClick={() => void run()}>
          {busy ? t("extract.running") : t("extract.run")}
        </button>
      </div>
      {preset === "custom" && (
        <label className="schema-editor">
          {t("extract.schema")}
          <textarea rows={8} value={schemaText} spellCheck={false} onChange={(event) => setSchemaText(event.target.value)} />
          {check?.error && (
            <span className="image-error" role="alert">
              {t("extract.schemaInvalid", { error: check.error })}
            </span>
          )}
        </label>
      )}
      {error && (
        <p className="image-error" role="alert">
          {error.message}
        </p>
      )}
      {result && (
        <article className="answer" data-testid="extract-result">
          <table className="fields">
            <tbody>
              {scalarFields(result.data).map(([name, value]) => (
                <tr key={name}>
                  <th>{name}</th>
                  <td>{value}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {items && (
            <table className="items" data-testid="line-items">
              <thead>
                <tr>
                  {items.columns.map((name) => (
                    <th key={name}>{name}</th>
                  ))}
                </tr>
              </thead>
              <tbody>
                {items.rows.map((row, index) => (
                  <tr key={index}>
                    {items.columns.map((name) => (
                      <td key={name}>{String(row[name] ?? "—")}</td>
                    ))}
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          <pre className="json" data-testid="extract-json">{json}</pre>
          <div className="answer-actions">
            <button type="button" onClick={() => void navigator.clipboard?.writeText(json)}>
              {t("answer.copy")}
            </button>
            <button type="button" onClick={() => download("extract.json", json, "application/json")}>
              {t("extract.downloadJson")}
            </button>
            {items && (
              <button type="button" onClick={() => download(`${items.field}.csv`, toCsv(items.rows), "text/csv")}>
                {t("extract.downloadCsv")}
              </button>
            )}
          </div>
          <p className="hint">{result.valid ? t("extract.valid") : t("extract.invalid")}</p>
        </article>
      )}
    </div>
  );
}
