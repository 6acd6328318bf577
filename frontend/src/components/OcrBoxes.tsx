import type { OcrLine } from "../api/client";
import { useI18n } from "../i18n/I18nContext";

/** The image with the fast engine's line boxes drawn over it, in the image's own pixel coordinates. */
export function OcrBoxes({
  src,
  width,
  height,
  lines,
}: {
  src: string;
  width: number;
  height: number;
  lines: OcrLine[];
}) {
  const { t } = useI18n();
  return (
    <figure className="ocr-boxes">
      <div className="ocr-canvas">
        <img src={src} alt="" />
        <svg viewBox={`0 0 ${width} ${height}`} preserveAspectRatio="none" data-testid="ocr-boxes">
          {lines.map((line, index) => (
            <polygon key={index} points={line.box.map(([x, y]) => `${x},${y}`).join(" ")}>
              <title>{`${line.text} (${Math.round(line.confidence * 100)}%)`}</title>
            </polygon>
          ))}
        </svg>
      </div>
      <figcaption>
        {t("answer.boxes")}: {lines.length}
      </figcaption>
    </figure>
  );
}
