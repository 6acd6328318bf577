import type { TrayImage } from "../hooks/useImages";
import { useI18n } from "../i18n/I18nContext";
import { PagePicker } from "./PagePicker";

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

/** One added image: thumbnail, size and pixel dimensions (or the server's refusal), select, remove. */
export function ImageCard({
  image,
  index,
  onToggle,
  onRemove,
  onPages,
}: {
  image: TrayImage;
  index: number;
  onToggle: () => void;
  onRemove: () => void;
  onPages: (pages: number[]) => void;
}) {
  const { t } = useI18n();
  const { info, document, error } = image;
  return (
    <figure className={`image-card${image.selected ? " selected" : ""}${error ? " refused" : ""}`}>
      {image.previewUrl ? <img src={image.previewUrl} alt={image.name} /> : <span className="thumb-wait" />}
      <figcaption>
        <span className="image-name">
          {index + 1}. {image.name}
        </span>
        {info && (
          <span className="image-meta">
            {info.width}×{info.height} · {formatBytes(info.bytes)}
          </span>
        )}
        {document && (
          <span className="image-meta">
            PDF · {formatBytes(document.bytes)}
          </span>
        )}
        {!info && !document && !error && <span className="image-meta">{t("images.uploading")}</span>}
        {error && (
          <span className="image-error" role="alert">
            {error.message}
          </span>
        )}
      </figcaption>
      {document && <PagePicker document={document} pages={image.pages} onChange={onPages} />}
      <div className="image-actions">
        {(info || document) && (
          <label>
            <input type="checkbox" checked={image.selected} onChange={onToggle} /> {t("images.select")}
          </label>
        )}
        <button type="button" className="link" onClick={onRemove}>
          {t("images.remove")}
        </button>
      </div>
    </figure>
  );
}
