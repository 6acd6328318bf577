import type { OcrResult } from "../api/client";
import { useI18n } from "../i18n/I18nContext";
import { AnswerActions } from "./AnswerActions";
import { MarkdownText } from "./MarkdownText";

/** A PDF's OCR, page by page: where each page's text came from (its text layer, or recognition). */
export function OcrPages({ result }: { result: OcrResult }) {
  const { t } = useI18n();
  return (
    <article className="answer" data-testid="answer">
      {result.pages.map((page) => (
        <section key={page.page} className="ocr-page" data-testid="ocr-page">
          <h3>
            {t("pdf.page", { page: page.page })}{" "}
            <span className="image-meta">
              {t(page.source === "pdf_text" ? "pdf.fromText" : "pdf.fromOcr")} · {Math.round(page.elapsed_ms)} ms
            </span>
          </h3>
          <MarkdownText text={page.markdown ?? page.text} />
        </section>
      ))}
      <AnswerActions text={result.text} downloadName="ocr.txt" />
    </article>
  );
}
