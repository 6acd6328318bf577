import { useEffect, useState } from "react";
import { pageImageUrl, type DocumentInfo } from "../api/client";
import { useI18n } from "../i18n/I18nContext";

const THUMBNAILS_SHOWN = 24;

/** A PDF's pages as thumbnails to pick from; none picked means every page. */
export function PagePicker({
  document,
  pages,
  onChange,
}: {
  document: DocumentInfo;
  pages: number[];
  onChange: (pages: number[]) => void;
}) {
  const { t } = useI18n();
  const [thumbnails, setThumbnails] = useState<Record<number, string>>({});
  const shown = document.pages.slice(0, THUMBNAILS_SHOWN);

  useEffect(() => {
    let alive = true;
    const made: string[] = [];
    void Promise.all(
      shown.map(async ({ page }) => {
        const url = await pageImageUrl(document.document_id, page);
        if (url) made.push(url);
        if (url && alive) setThumbnails((all) => ({ ...all, [page]: url }));
      }),
    );
    return () => {
      alive = false;
      made.forEach((url) => URL.revokeObjectURL(url));
    };
  }, [document.document_id]);

  const toggle = (page: number) =>
    onChange(pages.includes(page) ? pages.filter((p) => p !== page) : [...pages, page].sort((a, b) => a - b));

  return (
    <div className="page-picker" data-testid="page-picker">
      <span className="image-meta">
        {t("pdf.pages", { count: document.pages.length })} ·{" "}
        {pages.length === 0 ? t("pdf.allPages") : t("pdf.picked", { pages: pages.join(", ") })}
      </span>
      <div className="page-thumbs">
        {shown.map(({ page, has_text }) => (
          <label key={page} className={pages.includes(page) ? "page-thumb picked" : "page-thumb"}>
            {thumbnails[page] ? (
              <img src={thumbnails[page]} alt={t("pdf.page", { page })} />
            ) : (
              <span className="thumb-wait" />
            )}
            <input
              type="checkbox"
              checked={pages.includes(page)}
              onChange={() => toggle(page)}
              aria-label={t("pdf.page", { page })}
            />
            <span>
              {page}
              {has_text ? " · T" : ""}
            </span>
          </label>
        ))}
      </div>
    </div>
  );
}
