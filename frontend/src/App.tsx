import { useState } from "react";
import { isOcrResult, type StreamRequest, type TaskName, type UiTask } from "./api/client";
import { AnswerActions } from "./components/AnswerActions";
import { Conversation } from "./components/Conversation";
import { DropZone } from "./components/DropZone";
import { ErrorNotice } from "./components/ErrorNotice";
import { EstimateHint } from "./components/EstimateHint";
import { ExtractPanel } from "./components/ExtractPanel";
import { ImageCard } from "./components/ImageCard";
import { LanguageSwitch } from "./components/LanguageSwitch";
import { MarkdownText } from "./components/MarkdownText";
import { OcrBoxes } from "./components/OcrBoxes";
import { OcrPages } from "./components/OcrPages";
import { DEFAULT_OPTIONS, OptionsBar, toTaskOptions, type Options } from "./components/OptionsBar";
import { ReadyBadge } from "./components/ReadyBadge";
import { StatusLine } from "./components/StatusLine";
import { TaskTabs } from "./components/TaskTabs";
import { KeyPrompt } from "./components/KeyPrompt";
import { useApiKey } from "./hooks/useApiKey";
import { useConversation } from "./hooks/useConversation";
import { pageSelection, useImages, type TrayImage } from "./hooks/useImages";
import { useReadiness } from "./hooks/useReadiness";
import { isActive, useStream, type SocketFactory } from "./hooks/useStream";
import { useI18n } from "./i18n/I18nContext";

export function App({ createSocket }: { createSocket?: SocketFactory }) {
  const { t } = useI18n();
  const readiness = useReadiness();
  const key = useApiKey();
  const { images, selected, add, remove, toggle, setPages } = useImages();
  const stream = useStream(createSocket);
  const [task, setTask] = useState<UiTask>("ocr");
  const [options, setOptions] = useState<Options>(DEFAULT_OPTIONS);
  const [ranTask, setRanTask] = useState<TaskName | null>(null);

  const { state } = stream;
  const busy = isActive(state.status);
  const pdf: TrayImage | undefined = selected.find((image) => image.document !== null);
  const selectedIds = selected.flatMap((image) => (image.info ? [image.info.image_id] : []));
  const needsOne = task !== "ask" || pdf !== undefined; // a PDF is read on its own (its pages are the images)
  const selectionOk = needsOne ? selected.length === 1 : selected.length > 0;
  const optionsTask: TaskName = task === "extract" ? "ask" : task;
  const conversation = useConversation(state, selected.map((image) => `${image.key}:${image.pages}`).join(","));
  const source = pdf?.document
    ? { document_id: pdf.document.document_id, pages: pageSelection(pdf.pages) }
    : { image_ids: selectedIds };

  const send = (message: Omit<StreamRequest, "image_ids" | "document_id" | "pages">) => {
    const inputs = "document_id" in source ? { ...source, image_ids: [] } : source;
    stream.run({ ...message, ...inputs });
  };
  const run = () => {
    if (task === "extract") return;
    setRanTask(task);
    send({ type: "run", task, options: toTaskOptions(task, options), history: [] });
  };
  const ask = (question: string) => {
    setRanTask("ask");
    conversation.asked(question);
    send({ type: "run", task: "ask", question, history: conversation.turns, options: toTaskOptions("ask", options) });
  };
  const extractSource = !selectionOk
    ? null
    : pdf?.document
      ? { document_id: pdf.document.document_id, pages: pageSelection(pdf.pages) }
      : { image_id: selectedIds[0] };

  const shownHere = ranTask === task;
  const result = shownHere ? state.result : null;
  const ocrImage = result && isOcrResult(result) ? images.find((i) => i.info?.image_id === result.images[0]?.image_id) : undefined;

  return (
    <div className="app">
      <header className="header">
        <div>
          <h1>{t("app.title")}</h1>
          <p className="tagline">{t("app.tagline")}</p>
        </div>
        <div className="header-side">
          <ReadyBadge state={readiness} />
          <LanguageSwitch />
        </div>
      </header>
      <KeyPrompt state={key.state} onSubmit={(value) => void key.submit(value)} />
      <main className="layout">
        <section className="tray" aria-label="images">
          <DropZone onFiles={(files) => void add(files)} />
          {images.length === 0 && <p className="hint">{t("images.empty")}</p>}
          <div className="cards">
            {images.map((image, index) => (
              <ImageCard
                key={image.key}
                image={image}
                index={index}
                onToggle={() => toggle(image.key)}
                onRemove={() => remove(image.key)}
                onPages={(pages) => setPages(image.key, pages)}
              />
            ))}
          </div>
        </section>
        <section className="work">
          <TaskTabs task={task} onChange={setTask} />
          <OptionsBar task={optionsTask} options={options} onChange={setOptions} />
          <div className="run-bar">
            {task !== "ask" && task !== "extract" && (
              <button type="button" className="primary" disabled={busy || !selectionOk} onClick={run}>
                {t("task.run")}
              </button>
            )}
            {busy && (
              <button type="button" className="stop" onClick={stream.cancel}>
                {t("task.stop")}
              </button>
            )}
            {selectionOk && !busy && !pdf && task !== "extract" && (
              <EstimateHint task={task} imageIds={selectedIds} options={options} />
            )}
            {!selectionOk && images.length > 0 && (
              <span className="hint">{needsOne ? t("images.pickOne") : t("images.pickSome")}</span>
            )}
          </div>
          {task === "extract" && <ExtractPanel source={extractSource} maxTokens={options.maxNewTokens} />}
          {shownHere && <StatusLine state={state} />}
          {shownHere && state.error && <ErrorNotice error={state.error} readiness={readiness} />}
          {task === "extract" ? null : task === "ask" ? (
            <Conversation
              turns={conversation.turns}
              pendingQuestion={conversation.pendingQuestion}
              pendingAnswer={state.text}
              busy={busy}
              canAsk={selectionOk}
              onAsk={ask}
              onClear={conversation.clear}
            />
          ) : (
            shownHere &&
            state.text &&
            !(result && isOcrResult(result) && result.pages.length > 0) && (
              <article className="answer" data-testid="answer">
                <MarkdownText text={result && isOcrResult(result) && result.markdown ? result.markdown : state.text} />
                <AnswerActions text={state.text} downloadName={task === "ocr" ? "ocr.txt" : undefined} />
              </article>
            )
          )}
          {result && isOcrResult(result) && result.pages.length > 0 && <OcrPages result={result} />}
          {result && isOcrResult(result) && result.lines.length > 0 && ocrImage?.info && (
            <OcrBoxes
              src={ocrImage.previewUrl}
              width={ocrImage.info.width}
              height={ocrImage.info.height}
              lines={result.lines}
            />
          )}
        </section>
      </main>
    </div>
  );
}
