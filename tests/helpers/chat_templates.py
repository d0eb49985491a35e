"""Chat templates for tests.

``SMOLLM2_CHAT_TEMPLATE`` is SmolLM2-135M-Instruct's chat template (HuggingFaceTB, Apache-2.0), as its
tokenizer_config.json and the converted model's chat_template.jinja hold it (test_real_model.py checks
that the two agree when the model is available). It has no ``{% generation %}`` markers.
``TINY_CHAT_TEMPLATE`` marks the assistant turns with them; ``MERGING_CHAT_TEMPLATE`` ends its
generation prompt with a space, so a byte-level BPE merges it with the answer's first word.
"""

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
