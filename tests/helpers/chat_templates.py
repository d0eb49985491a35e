"""Chat templates for tests, and the conversation and hand-built masks the mask tests compare with.

``SMOLLM2_CHAT_TEMPLATE`` is SmolLM2-135M-Instruct's chat template (HuggingFaceTB, Apache-2.0), as its
tokenizer_config.json and the converted model's chat_template.jinja hold it (test_real_model.py checks
that the two agree when the model is available). It has no ``{% generation %}`` markers.
``TINY_CHAT_TEMPLATE`` marks the assistant turns with them; ``MERGING_CHAT_TEMPLATE`` ends its
generation prompt with a space, so a byte-level BPE merges it with the answer's first word.
"""

from rocoft_llm.data.tokenize import IGNORE_INDEX

SMOLLM2_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

TINY_CHAT_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'assistant' %}{{ '### Response:\n' }}"
    "{% generation %}{{ m['content'] + eos_token }}{% endgeneration %}{{ '\n' }}"
    "{% else %}{{ '### ' + m['role'] + ':\n' + m['content'] + '\n' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '### Response:\n' }}{% endif %}"
)

MERGING_CHAT_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'assistant' %}{{ 'A: ' + m['content'] + eos_token }}"
    "{% else %}{{ 'Q: ' + m['content'] + '\n' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'A: ' }}{% endif %}"
)

#: Gemma-3's chat template (Google, the Gemma terms of use), as the instruction-tuned Gemma-3 models'
#: tokenizer_config.json holds it: a BOS written by the template, the assistant role named "model",
#: a system turn folded into the first user turn, content trimmed, every turn closed by
#: ``<end_of_turn>`` (not the tokenizer's EOS ``<eos>``). The registry's Gemma-3-270M is the base
#: model, whose GGUF carries no chat template; `data.chat_template FILE` supplies this one.
GEMMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}\n"
    "{%- if messages[0]['role'] == 'system' -%}\n"
    "    {%- if messages[0]['content'] is string -%}\n"
    "        {%- set first_user_prefix = messages[0]['content'] + '\\n\\n' -%}\n"
    "    {%- else -%}\n"
    "        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\\n\\n' -%}\n"
    "    {%- endif -%}\n"
    "    {%- set loop_messages = messages[1:] -%}\n"
    "{%- else -%}\n"
    '    {%- set first_user_prefix = "" -%}\n'
    "    {%- set loop_messages = messages -%}\n"
    "{%- endif -%}\n"
    "{%- for message in loop_messages -%}\n"
    "    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}\n"
    '        {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}\n'
    "    {%- endif -%}\n"
    "    {%- if (message['role'] == 'assistant') -%}\n"
    '        {%- set role = "model" -%}\n'
    "    {%- else -%}\n"
    "        {%- set role = message['role'] -%}\n"
    "    {%- endif -%}\n"
    "    {{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else \"\") }}\n"
    "    {%- if message['content'] is string -%}\n"
    "        {{ message['content'] | trim }}\n"
    "    {%- elif message['content'] is iterable -%}\n"
    "        {%- for item in message['content'] -%}\n"
    "            {%- if item['type'] == 'image' -%}\n"
    "                {{ '<start_of_image>' }}\n"
    "            {%- elif item['type'] == 'text' -%}\n"
    "                {{ item['text'] | trim }}\n"
    "            {%- endif -%}\n"
    "        {%- endfor -%}\n"
    "    {%- else -%}\n"
    '        {{ raise_exception("Invalid content type") }}\n'
    "    {%- endif -%}\n"
    "    {{ '<end_of_turn>\\n' }}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}\n"
    "    {{'<start_of_turn>model\\n'}}\n"
    "{%- endif -%}\n"
)

#: a two-exchange conversation the mask tests render through each template
TURNS = [
    {"role": "user", "content": "Tom has 3 apples and buys 5 more. How many?"},
    {"role": "assistant", "content": "3 + 5 = 8. The answer is 8"},
    {"role": "user", "content": "Please answer with true or false: 8 > 3?"},
    {"role": "assistant", "content": "the correct answer is true"},
]


def hand_mask(tok, segments):
    """ids and labels from (text, carries loss) segments, each tokenized on its own."""
    ids, labels = [], []
    for text, loss in segments:
        piece = tok(text, add_special_tokens=False)["input_ids"]
        ids += piece
        labels += piece if loss else [IGNORE_INDEX] * len(piece)
    return ids, labels


def smollm2_segments(turns):
    """SmolLM2 (no generation markers): loss on each assistant content and its <|im_end|>, nothing else -
    not the injected system prompt, the user turns, the headers or the newline after; no EOS added
    (the template ends its turns with the EOS itself)."""
    system = (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
    )
    return [
        (system + f"<|im_start|>user\n{turns[0]}<|im_end|>\n<|im_start|>assistant\n", False),
        (f"{turns[1]}<|im_end|>", True),
        (f"\n<|im_start|>user\n{turns[2]}<|im_end|>\n<|im_start|>assistant\n", False),
        (f"{turns[3]}<|im_end|>", True),
        ("\n", False),
    ]


def gemma3_segments(turns):
    """Gemma-3 (its own BOS, role "model", turns closed by <end_of_turn>, which is NOT its EOS <eos>):
    loss on each answer, its <end_of_turn> and the newline the template writes after it, and on the
    EOS that ``add_eos`` appends - generation stops at EOS, so the model learns to reach it."""
    return [
        (f"<bos><start_of_turn>user\n{turns[0]}<end_of_turn>\n<start_of_turn>model\n", False),
        (f"{turns[1]}<end_of_turn>\n", True),
        (f"<start_of_turn>user\n{turns[2]}<end_of_turn>\n<start_of_turn>model\n", False),
        (f"{turns[3]}<end_of_turn>\n<eos>", True),
    ]
