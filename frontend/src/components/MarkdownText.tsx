import Markdown from "react-markdown";
import remarkGfm from "remark-gfm";

/**
 * Renders an answer as Markdown (GFM tables included). Safe by construction: react-markdown never
 * interprets raw HTML in the text (no rehype-raw here) and drops javascript: links.
 */
export function MarkdownText({ text }: { text: string }) {
  return (
    <div className="markdown">
      <Markdown remarkPlugins={[remarkGfm]}>{text}</Markdown>
    </div>
  );
}
