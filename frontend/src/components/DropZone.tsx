import { useEffect, useRef, useState, type DragEvent } from "react";
import { useI18n } from "../i18n/I18nContext";

/** Adds images by file picker, drag and drop onto the page, or paste from the clipboard. */
export function DropZone({ onFiles }: { onFiles: (files: File[]) => void }) {
  const { t } = useI18n();
  const input = useRef<HTMLInputElement>(null);
  const [dragging, setDragging] = useState(false);

  useEffect(() => {
    const onPaste = (event: ClipboardEvent) => {
      const files = Array.from(event.clipboardData?.files ?? []);
      if (files.length > 0) {
        event.preventDefault();
        onFiles(files);
      }
    };
    const onPageDrop = (event: globalThis.DragEvent) => event.preventDefault(); // never navigate to a dropped file
    document.addEventListener("paste", onPaste);
    window.addEventListener("dragover", onPageDrop);
    window.addEventListener("drop", onPageDrop);
    return () => {
      document.removeEventListener("paste", onPaste);
      window.removeEventListener("dragover", onPageDrop);
      window.removeEventListener("drop", onPageDrop);
    };
  }, [onFiles]);

  const onDrop = (event: DragEvent<HTMLDivElement>) => {
    event.preventDefault();
    setDragging(false);
    const files = Array.from(event.dataTransfer.files);
    if (files.length > 0) onFiles(files);
  };

  return (
    <div
      className={dragging ? "dropzone dragging" : "dropzone"}
      data-testid="dropzone"
      onDragOver={(event) => {
        event.preventDefault();
        setDragging(true);
      }}
      onDragLeave={() => setDragging(false)}
      onDrop={onDrop}
    >
      {t("images.drop")}{" "}
      <button type="button" className="link" onClick={() => input.current?.click()}>
        {t("images.pick")}
      </button>
      <input
        ref={input}
        type="file"
        accept="image/*,application/pdf"
        multiple
        hidden
        data-testid="file-input"
        onChange={(event) => {
          onFiles(Array.from(event.target.files ?? []));
          event.target.value = "";
        }}
      />
    </div>
  );
}
