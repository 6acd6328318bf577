import { useState } from "react";
import { useI18n } from "../i18n/I18nContext";

export function downloadText(text: string, filename: string): void {
  const url = URL.createObjectURL(new Blob([text], { type: "text/plain;charset=utf-8" }));
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  link.click();
  URL.revokeObjectURL(url);
}

/** Copy an answer; OCR text can also be downloaded as a UTF-8 .txt file. */
export function AnswerActions({ text, downloadName }: { text: string; downloadName?: string }) {
  const { t } = useI18n();
  const [copied, setCopied] = useState(false);
  const copy = async () => {
    await navigator.clipboard.writeText(text);
    setCopied(true);
    setTimeout(() => setCopied(false), 1500);
  };
  return (
    <div className="answer-actions">
      <button type="button" onClick={() => void copy()}>
        {copied ? t("answer.copied") : t("answer.copy")}
      </button>
      {downloadName && (
        <button type="button" onClick={() => downloadText(text, downloadName)}>
          {t("answer.download")}
        </button>
      )}
    </div>
  );
}
