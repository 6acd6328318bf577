import { useState } from "react";
import { isOcrResult, type TaskName } from "./api/client";
import { AnswerActions } from "./components/AnswerActions";
import { Conversation } from "./components/Conversation";
import { DropZone } from "./components/DropZone";
import { ErrorNotice } from "./components/ErrorNotice";
import { EstimateHint } from "./components/EstimateHint";
import { ImageCard } from "./components/ImageCard";
import { LanguageSwitch } from "./components/LanguageSwitch";
import { MarkdownText } from "./components/MarkdownText";
import { OcrBoxes } from "./components/OcrBoxes";
import { DEFAULT_OPTIONS, OptionsBar, toTaskOptions, type Options } from "./components/OptionsBar";
import { ReadyBadge } from "./components/ReadyBadge";
import { StatusLine } from "./components/StatusLine";
import { TaskTabs } from "./components/TaskTabs";
import { KeyPrompt } from "./components/KeyPrompt";
import { useApiKey } from "./hooks/useApiKey";
import { useConversation } from "./hooks/useConversation";
import { useImages } from "./hooks/useImages";
import { useReadiness } from "./hooks/useReadiness";
import { isActive, useStream, type SocketFactory } from "./hooks/useStream";
import { useI18n } from "./i18n/I18nContext";

export function App({ createSocket }: { createSocket?: SocketFactory }) {
  const { t } = useI18n();
  const readiness = useReadiness();
  const key = useApiKey();
  const { images, selected, add, remove, toggle } = useImages();
  const stream = useStream(createSocket);
  const [task, setTask] = useState<TaskName>("ocr");
  const [options, setOptions] = useState<Options>(DEFAULT_OPTIONS);
  const [ranTask, setRanTask] = useState<TaskName | null>(null);

  const { state } = stream;
  const busy = isActive(state.status);
  const selectedIds = selected.map((image) => image.info!.image_id);
  const needsOne = task !== "ask";
  const selectionOk = needsOne ? selected.length === 1 : selected.length > 0;
  const conversation = useConversation(state, selectedIds.join(","));

  const run = () => {
    setRanTask(task);
    stream.run({ type: "run", task, image_ids: selectedIds, options: toTaskOptions(task, options), history: [] });
  };
  const ask = (question: string) => {
    setRanTask("ask");
    conversation.asked(question);
    stream.run({
      type: "run",
      task: "ask",
      image_ids: selectedIds,
      question,
      history: conversation.turns,
      options: toTaskOptions("ask", options),
    });
  };

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
              />
            ))}
          </div>
        </section>
        <section className="work">
          <TaskTabs task={task} onChange={setTask} />
          <OptionsBar task={task} options={options} onChange={setOptions} />
          <div className="run-bar">
            {task !== "ask" && (
              <button type="button" className="primary" disabled={busy || !selectionOk} onClick={run}>
                {t("task.run")}
              </button>
            )}
            {busy && (
              <button type="button" className="stop" onClick={stream.cancel}>
                {t("task.stop")}
              </button>
            )}
            {selectionOk && !busy && <EstimateHint task={task} imageIds={selectedIds} options={options} />}
            {!selectionOk && images.length > 0 && (
              <span className="hint">{needsOne ? t("images.pickOne") : t("images.pickSome")}</span>
            )}
          </div>
          {shownHere && <StatusLine state={state} />}
          {shownHere && state.error && <ErrorNotice error={state.error} readiness={readiness} />}
          {task === "ask" ? (
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
            state.text && (
              <article className="answer" data-testid="answer">
                <MarkdownText text={result && isOcrResult(result) && result.markdown ? result.markdown : state.text} />
                <AnswerActions text={state.text} downloadName={task === "ocr" ? "ocr.txt" : undefined} />
              </article>
            )
          )}
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
