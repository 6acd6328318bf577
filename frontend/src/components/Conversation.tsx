import { useState, type FormEvent } from "react";
import type { Turn } from "../api/client";
import { useI18n } from "../i18n/I18nContext";
import { MarkdownText } from "./MarkdownText";

/** The Ask chat: earlier turns, the answer being streamed, and the question box. */
export function Conversation({
  turns,
  pendingQuestion,
  pendingAnswer,
  busy,
  canAsk,
  onAsk,
  onClear,
}: {
  turns: Turn[];
  pendingQuestion: string | null;
  pendingAnswer: string;
  busy: boolean;
  canAsk: boolean;
  onAsk: (question: string) => void;
  onClear: () => void;
}) {
  const { t } = useI18n();
  const [question, setQuestion] = useState("");
  const submit = (event: FormEvent) => {
    event.preventDefault();
    const text = question.trim();
    if (!text || busy || !canAsk) return;
    onAsk(text);
    setQuestion("");
  };
  const shown: Turn[] = pendingQuestion ? [...turns, { role: "user", content: pendingQuestion }] : turns;
  return (
    <section className="conversation">
      <ol className="turns">
        {shown.map((turn, index) => (
          <li key={index} className={`turn turn-${turn.role}`}>
            <span className="speaker">{turn.role === "user" ? t("ask.you") : t("ask.assistant")}</span>
            {turn.role === "user" ? <p>{turn.content}</p> : <MarkdownText text={turn.content} />}
          </li>
        ))}
        {pendingQuestion && pendingAnswer && (
          <li className="turn turn-assistant pending" data-testid="pending-answer">
            <span className="speaker">{t("ask.assistant")}</span>
            <MarkdownText text={pendingAnswer} />
          </li>
        )}
      </ol>
      <form className="ask-form" onSubmit={submit}>
        <textarea
          value={question}
          placeholder={t("ask.placeholder")}
          rows={2}
          onChange={(event) => setQuestion(event.target.value)}
          onKeyDown={(event) => {
            if (event.key === "Enter" && !event.shiftKey) submit(event);
          }}
        />
        <div className="ask-buttons">
          <button type="submit" className="primary" disabled={busy || !canAsk || !question.trim()}>
            {t("task.send")}
          </button>
          {turns.length > 0 && (
            <button type="button" onClick={onClear} disabled={busy}>
              {t("ask.clear")}
            </button>
          )}
        </div>
      </form>
    </section>
  );
}
