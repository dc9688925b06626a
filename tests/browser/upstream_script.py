"""What the recording upstream answers in the browser tests: each prompt of the notebooks gets
an answer that suits it, and the prompts the tests write get slow, recognisable answers."""
from __future__ import annotations

from tests.support.fake_upstream import Reply

# %%claude streaming: long enough, and slow enough, to be seen growing in the page.
STREAMED_PROMPT = "Describe a notebook kernel in a short list."
STREAMED_ANSWER = ("A **kernel** is the process that runs your code.\n\n"
                   "- it keeps your *variables* between cells\n"
                   "- it sends results back to the page\n"
                   "- each notebook has its own\n\n"
                   "That is all there is to it: restart it and the state is gone.")

CHAT_PROMPT = "Say hello to the chat."
CHAT_ANSWER = "Hello from the chat panel."
SLOW_CHAT_PROMPT = "Tell me a long story."
SLOW_CHAT_ANSWER = "Once upon a time " + "there was a notebook that ran " * 60 + "the end."

CODE_PROMPT = "Write a function that adds two numbers."
CODE_ANSWER = "```python\ndef add(a, b):\n    return a + b\n```"


def responder(rec) -> Reply:
    texts = rec.user_texts()
    text = texts[-1] if texts else ""
    if text == STREAMED_PROMPT:
        return Reply.text(STREAMED_ANSWER, delay_per_chunk=0.05)
    if text == CHAT_PROMPT:
        return Reply.text(CHAT_ANSWER, delay_per_chunk=0.02)
    if text == SLOW_CHAT_PROMPT:
        return Reply.text(SLOW_CHAT_ANSWER, delay_per_chunk=0.05)
    if text == CODE_PROMPT:
        return Reply.text(CODE_ANSWER)
    # the notebooks' own prompts
    if "JSON object" in text:          # --format json: structured output, the CLI's tool call
        return Reply.tool_use("StructuredOutput", {"planet": "Mars", "moons": 2})
    if text.startswith("Classify the sentiment"):
        review = text.rsplit("Review: ", 1)[-1].lower()
        # slow enough that the batch's progress bar is on screen for a while
        word = "positive" if "love" in review else "negative" if "terrible" in review else "mixed"
        return Reply.text(word, hang=0.5)
    return Reply.text("You said: " + text)
