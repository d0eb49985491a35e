"""Converters on rows shaped exactly like the original datasets' published schemas (the fields and
types each catalog entry's ``checked`` note names) produce LLM-Adapters records."""

import json
import re

import pytest

from rocoft_llm.data.converters import convert_rows
from rocoft_llm.errors import RoCoFTError

CASES = {
    "boolq": (
        {"question": "is the sky blue", "answer": True, "passage": "..."},
        {
            "instruction": "Please answer the following question with true or false, question: is the sky blue?\n\n"
            "Answer format: true/false",
            "output": "the correct answer is true",
            "answer": "true",
        },
    ),
    "piqa": (
        {"goal": "Open a jar", "sol1": "Twist the lid.", "sol2": "Eat the lid.", "label": 0},
        {
            "instruction": "Please choose the correct solution to the question: Open a jar\n\nSolution1: Twist the lid."
            "\n\nSolution2: Eat the lid.\n\nAnswer format: solution1/solution2",
            "output": "the correct answer is solution1",
            "answer": "solution1",
        },
    ),
    "siqa": (
        {
            "context": "Tracy stayed.",
            "question": "Why?",
            "answerA": "a",
            "answerB": "b",
            "answerC": "c",
            "label": "3",
        },
        {
            "instruction": "Please choose the correct answer to the question: Tracy stayed. Why?\n\nAnswer1: a "
            "Answer2: b Answer3: c\n\nAnswer format: answer1/answer2/answer3",
            "output": "the correct answer is answer3",
            "answer": "answer3",
        },
    ),
    "hellaswag": (
        {
            "ind": 4,
            "activity_label": "Roof shingle removal",
            "ctx_a": "A man is on a roof.",
            "ctx_b": "he",
            "ctx": "A man is on a roof. he",
            "endings": ["e1", "e2", "e3", "e4"],
            "source_id": "activitynet~v_x",
            "split": "val",
            "split_type": "indomain",
            "label": "3",
        },
        {
            "instruction": "Please choose the correct ending to complete the given sentence: Roof shingle removal: "
            "A man is on a roof. he\n\nEnding1: e1 Ending2: e2 Ending3: e3 Ending4: e4\n\n"
            "Answer format: ending1/ending2/ending3/ending4",
            "output": "the correct answer is ending4",
            "answer": "ending4",
        },
    ),
    "winogrande": (
        {"sentence": "Sarah beat Maria so _ won.", "option1": "Sarah", "option2": "Maria", "answer": "1"},
        {
            "instruction": "Please choose the correct answer to fill in the blank to complete the given sentence: "
            "Sarah beat Maria so _ won.\n\nOption1: Sarah Option2: Maria Answer format: "
            "option1/option2",
            "output": "the correct answer is option1",
            "answer": "option1",
        },
    ),
    "arc": (
        {
            "id": "Mercury_7175875",
            "question": "Q?",
            "choices": {"text": ["x", "y", "z"], "label": ["1", "2", "3"]},
            "answerKey": "2",
        },
        {
            "instruction": "Please choose the correct answer to the question: Q?\n\nAnswer1: x Answer2: y Answer3: z"
            "\n\nAnswer format: answer1/answer2/answer3",
            "output": "the correct answer is answer2",
            "answer": "answer2",
        },
    ),
    "openbookqa": (
        {
            "id": "7-980",
            "question_stem": "S",
            "choices": {"text": list("abcd"), "label": list("ABCD")},
            "answerKey": "D",
        },
        {
            "instruction": "Please choose the correct answer to the question: S\n\nAnswer1: a Answer2: b "
            "Answer3: c Answer4: d\n\nAnswer format: answer1/answer2/answer3/answer4",
            "output": "the correct answer is answer4",
            "answer": "answer4",
        },
    ),
    "gsm8k": (
        {"question": "Tom has 2+3?", "answer": "He has 2+3=<<2+3=5>>5 apples.\n#### 1,005"},
        {
            "instruction": "Tom has 2+3?",
            "output": "He has 2+3=5 apples.\nThe answer is 1005.",
            "answer": "1005",
        },
    ),
    "svamp": (
        {
            "ID": "chal-1",
            "Body": "Jack had 8 pens.",
            "Question": "How many left after 3?",
            "Equation": "( 8.0 - 3.0 )",
            "Answer": 5.0,
            "Type": "Subtraction",
        },
        {
            "instruction": "Jack had 8 pens. How many left after 3?",
            "output": "( 8.0 - 3.0 ) = 5. The answer is 5.",
            "answer": "5",
        },
    ),
    "aqua": (
        {
            "question": "2+2?",
            "options": ["A)3", "B)4", "C)5", "D)6", "E)7"],
            "rationale": "2+2=4.",
            "correct": "B",
        },
        {
            "instruction": "2+2? Answer Choices: (A) 3 (B) 4 (C) 5 (D) 6 (E) 7",
            "output": "2+2=4.\nThe answer is (B).",
            "answer": "B",
        },
    ),
    "mawps_style": (
        {"sQuestion": " Sam had 3 and got 1.5 more. ", "lSolutions": [4.5], "lEquations": ["X=(3+1.5)"]},
        {
            "instruction": " Sam had 3 and got 1.5 more. ",
            "output": "X=(3+1.5). The answer is 4.5.",
            "answer": "4.5",
        },
    ),
}


@pytest.mark.parametrize("converter", sorted(CASES))
def test_converter(converter):
    row, expected = CASES[converter]
    assert convert_rows([row], converter, "src") == [{"input": "", **expected}]


#: the number-answer sources that share the mawps_style converter, each with its own field names
NUMBER_SOURCES = {
    "multiarith (ChilleD/MultiArith)": ({"question": "Tom had 3 and got 2.", "final_ans": "5"}, ""),
    "addsub / singleeq (allenai/lila)": (
        {
            "input": "Tom had 3 and got 2.",
            "output_program": "answer = 3 + 2\nprint(answer)",
            "output_answer": "5",
            "split": "test",
            "dataset": "addsub.json",
        },
        "",
    ),
    "mawps (MU-NLPC/Calc-mawps)": (
        {
            "id": "mawps_1",
            "question": "Tom had 3 and got 2.",
            "chain": '<gadget id="calculator">3 + 2</gadget>',
            "result": "5",
            "result_float": 5.0,
            "equation": "x=3+2",
            "expression": "3+2",
        },
        "x=3+2. ",
    ),
}


@pytest.mark.parametrize("source", sorted(NUMBER_SOURCES))
def test_number_sources_use_their_own_field_names(source):
    row, equation = NUMBER_SOURCES[source]
    assert convert_rows([row], "mawps_style", source) == [
        {
            "instruction": "Tom had 3 and got 2.",
            "input": "",
            "output": f"{equation}The answer is 5.",
            "answer": "5",
        }
    ]


def test_every_catalog_entry_says_what_it_was_checked_against():
    from rocoft_llm.data.catalog import load_catalog

    datasets, _ = load_catalog()
    assert all(len(entry.checked) > 20 for entry in datasets.values()), [
        k for k, e in datasets.items() if not e.checked
    ]
    assert datasets["singleeq"].hub["config"] == "singleq"  # LILA's config name (there is no "singleeq")


def test_bad_row_names_source_row_and_fields():
    with pytest.raises(
        RoCoFTError, match=r"boolq.csv: row 1 does not fit the 'piqa' converter .*fields present"
    ):
        convert_rows([CASES["piqa"][0], {"question": "q"}], "piqa", "boolq.csv")


def _roundtrip_rows(task, records):
    """Hub-shaped rows rebuilt from real LLM-Adapters records (to check our wording reproduces theirs)."""
    rows = []
    for r in records:
        ins = r["instruction"]
        if task == "boolq":
            q = re.match(
                r"Please answer the following question with true or false, question: (.*)\?\n\n", ins, re.S
            ).group(1)
            rows.append({"question": q, "answer": r["answer"] == "true"})
        elif task == "piqa":
            m = re.match(
                r"Please choose the correct solution to the question: (.*)\n\nSolution1: (.*)\n\nSolution2: (.*)"
                r"\n\nAnswer format",
                ins,
                re.S,
            )
            rows.append({"goal": m[1], "sol1": m[2], "sol2": m[3], "label": int(r["answer"][-1]) - 1})
        elif task == "winogrande":
            m = re.match(r".*given sentence: (.*)\n\nOption1: (.*) Option2: (.*) Answer format", ins, re.S)
            rows.append({"sentence": m[1], "option1": m[2], "option2": m[3], "answer": r["answer"][-1]})
        else:  # ARC / OBQA style
            m = re.match(
                r"Please choose the correct answer to the question: (.*)\n\n(Answer1: .*)\n\nAnswer format",
                ins,
                re.S,
            )
            texts = re.split(r" ?Answer\d: ", m[2])[1:]
            labels = [str(i + 1) for i in range(len(texts))]
            rows.append(
                {"question": m[1], "choices": {"text": texts, "label": labels}, "answerKey": r["answer"][-1]}
            )
    return rows


@pytest.mark.parametrize(
    "task,folder,converter",
    [
        ("boolq", "boolq", "boolq"),
        ("piqa", "piqa", "piqa"),
        ("winogrande", "winogrande", "winogrande"),
        ("arc", "ARC-Challenge", "arc"),
    ],
)
def test_wording_matches_real_llm_adapters_files(shared_data, task, folder, converter):
    records = json.loads((shared_data / folder / "test.json").read_text())[:300]
    if task == "arc":  # option texts containing "AnswerN: " cannot be split back unambiguously
        records = [r for r in records if r["instruction"].count("Answer") == 5]  # 4 options + format line
    converted = convert_rows(_roundtrip_rows(task, records), converter, folder)
    assert len(converted) > 100
    for got, real in zip(converted, records):
        assert got == real
