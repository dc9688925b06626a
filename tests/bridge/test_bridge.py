"""The bridge against the real CLI and the recording upstream."""
import pytest

from claude_nb.protocol.errors import AnthropicError
from tests.support.fake_upstream import Reply


async def collect(bridge, body, **kw):
    return [e async for e in bridge.stream(body, **kw)]


async def test_single_turn_answer_and_usage_recorded(bridge, upstream):
    runs = []
    bridge.run_listeners.append(runs.append)
    message = await bridge.create({"model": "sonnet", "max_tokens": 50,
                                   "messages": [{"role": "user", "content": "hi there"}]})
    assert message["content"] == [{"type": "text", "text": "You said: hi there"}]
    assert message["stop_reason"] == "end_turn"
    sent = upstream.message_requests[-1]
    assert sent.body["max_tokens"] == 50
    assert not sent.asks_for_thinking()
    assert sent.user_texts() == ["hi there"]
    assert len(runs) == 1 and runs[0].status == "succeeded" and runs[0].cost_usd > 0


async def test_history_reaches_upstream_as_real_turns(bridge, upstream):
    body = {"model": "sonnet", "max_tokens": 50, "system": "Answer tersely.",
            "messages": [{"role": "user", "content": "first question"},
                         {"role": "assistant", "content": "first answer"},
                         {"role": "user", "content": [{"type": "text", "text": "second question"}]}]}
    message = await bridge.create(body)
    assert message["content"][0]["text"] == "You said: second question"
    sent = upstream.message_requests[-1]
    roles = [m["role"] for m in sent.conversation()]
    assert roles == ["user", "assistant", "user"]
    assert sent.conversation()[1]["content"][0]["text"] == "first answer"
    assert sent.user_texts() == ["first question", "second question"]
    assert "Answer tersely." in sent.system_text()


async def test_upstream_status_is_kept(bridge, upstream):
    upstream.push(Reply.error(429, "rate_limit_error", "slow down"))
    with pytest.raises(AnthropicError) as info:
        await bridge.create({"model": "sonnet", "max_tokens": 50,
                             "messages": [{"role": "user", "content": "x"}]})
    assert info.value.status == 429 and info.value.type == "rate_limit_error"


async def test_cut_stream_is_an_error_not_a_short_answer(bridge, upstream):
    upstream.push(Reply.text("This answer will be cut somewhere in the middle", drop_after_chars=12))
    events = []
    with pytest.raises(AnthropicError) as info:
        async for event in bridge.stream({"model": "sonnet", "max_tokens": 50,
                                          "messages": [{"role": "user", "content": "x"}]}):
            events.append(event)
    assert info.value.status >= 500
    assert "message_stop" not in [e["type"] for e in events]
