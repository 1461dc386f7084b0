"""A generated customer-service corpus for intent classification (text classification).

Analytics Zoo's text-classification use case routes customer messages to the team that handles
them. Real support logs cannot be shipped, so :func:`intents` writes messages the way a
customer might: offline, seeded, any size, with known labels.

Every intent gets ``n_per_intent`` messages, each made in four steps (the rows are then shuffled):

1. One of the intent's sentence templates is picked (6 or 7 per intent, of 4 to 12 words).
   Its slots are filled from synonym lists: the intent's own key words (``{cancel}``:
   cancel, end, terminate, stop, close) and fillers every intent shares (``{item}``: order,
   package, parcel, headphones, ...; ``{when}``; order references such as ``#48213``;
   amounts; devices; plans). Several templates borrow another intent's words ("my card was
   charged twice", "i cancelled my order ... where is my refund").
2. Half of the messages get a side remark about another intent, which does not ask for it
   ("i already changed my password", "i do not want a refund"), before or after the request.
   Every intent's key words therefore appear in messages of other intents: single words do
   not decide the intent; the request around them does.
3. Politeness and context are wrapped around it: a greeting (often none), up to two shared
   context sentences ("i have been a customer for years", "this is urgent", "my account
   number is 52214") before or after it, and a closing ("please help", "thanks in advance",
   "i need help with my account"). Messages run from 4 to about 40 words.
4. Typing noise: every word of three letters or more gets a typo with probability ``noise``
   (a letter dropped, doubled, or swapped with the next one); the first letter may be
   capitalised and the message ends with ".", "?", "!" or nothing.

The labels are exact (no label noise): the request always names its intent, up to typos, but a
model has to read past side remarks, shared words, fillers, unseen order numbers and typos. A
bag-of-words logistic regression trained on 50 messages per intent scores about 0.98 on new
messages, multinomial naive Bayes about 0.93; the 8 intents make chance 0.125.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from workbench.arguments import check_positive_int

__all__ = ["intents", "INTENTS"]

# Each intent's sentence templates. A {slot} is filled from _SLOTS (shared and intent key words).
_TEMPLATES: dict[str, tuple[str, ...]] = {
    "billing": (
        "why was i {charged} twice for my {plan}",
        "there is a {fee} on my {statement} i do not recognise",
        "my {invoice} for {when} shows the wrong amount",
        "can you explain the {fee} of {amount} on my account",
        "i was {charged} {amount} but my {plan} costs less",
        "the {invoice} for my {plan} looks too high",
        "my {card} was {charged} twice for one order",
    ),
    "refund": (
        "i want a {refund} for my {item} {ref}",
        "how long does a {refund} take to reach my account",
        "please {give_back} for the {item} i returned {when}",
        "the {item} arrived broken and i would like a {refund}",
        "i returned {ref} {when} but still have no {refund}",
        "can i get a {refund} if i cancel my order now",
        "i cancelled my order {when} so where is my {refund}",
    ),
    "cancel_subscription": (
        "i want to {cancel} my {plan}",
        "how do i {cancel} my {plan} before the next {invoice}",
        "please {cancel} my account and stop all future payments",
        "i no longer need the {plan} please {cancel} it",
        "{cancel} my {plan} from next month",
        "i was {charged} again so please {cancel} my {plan} today",
    ),
    "delivery_status": (
        "where is my {item} {ref}",
        "my {item} has not arrived yet i ordered it {when}",
        "can you {track} my {item}",
        "the tracking for {ref} has not changed since {when}",
        "when will my {item} be delivered",
        "is my {item} still on its way",
        "the {item} i paid for {when} never arrived",
    ),
    "change_address": (
        "i need to change the {address} for my {item} {ref}",
        "can i send my {item} to a different {address}",
        "i moved {when} please update my {address}",
        "the {address} on my account is wrong",
        "please ship {ref} to my new {address} instead",
        "can you update the {address} on order {ref}",
    ),
    "password_reset": (
        "i forgot my {password}",
        "how do i reset my {password}",
        "i cannot {log_in} because my {password} is not accepted",
        "the {password} reset email never arrived",
        "my account is locked after too many {password} attempts",
        "i need a new {password} for my account",
        "i cannot {log_in} on my {device} with my {password}",
    ),
    "technical_issue": (
        "the app keeps {crashing} on my {device}",
        "i get an error when i open the app on my {device}",
        "the website {crashes} every time i try to pay",
        "your app {crashes} since the update {when}",
        "nothing happens when i press the checkout button on my {device}",
        "the page will not load on my {device}",
        "the app logs me out every time i enter my password",
    ),
    "update_payment": (
        "i need to update my {card} details",
        "how do i change the {card} on my account",
        "my {card} expired please update it",
        "i want to add a new {card} for my {plan}",
        "the payment failed because my {card} is out of date",
        "my payment was declined please let me change my {card}",
    ),
}

# Side remarks touching on an intent without asking for it ("i already changed my password").
# A message of another intent may carry one, so an intent's key words can appear in a message
# that is not about it.
_REMARKS: dict[str, tuple[str, ...]] = {
    "billing": ("i was charged the right amount last month", "i paid the invoice already"),
    "refund": ("i got a refund for another order before", "i do not want a refund"),
    "cancel_subscription": ("i thought about cancelling but i want to stay", "i do not want to cancel"),
    "delivery_status": ("my other order arrived fine", "the parcel was delivered on time"),
    "change_address": ("i updated my address last year", "my address has not changed"),
    "password_reset": ("i already changed my password", "my password works fine"),
    "technical_issue": ("the app works fine on my laptop", "i already updated the app"),
    "update_payment": ("my card details are up to date", "i added a new card last month"),
}

#: The intent labels, in the order of their templates.
INTENTS: tuple[str, ...] = tuple(_TEMPLATES)

# Slot fillers. Generated references ({ref}, {amount}, {account}) are made in _fill.
_SLOTS: dict[str, tuple[str, ...]] = {
    # shared by several intents
    "item": ("order", "package", "parcel", "headphones", "blender", "jacket", "phone case", "coffee machine"),
    "when": ("yesterday", "last week", "two days ago", "on monday", "this morning", "three weeks ago",
             "last month", "a few days ago"),
    "plan": ("subscription", "membership", "monthly plan", "premium plan", "annual subscription"),
    "device": ("phone", "iphone", "android phone", "laptop", "tablet", "computer"),
    "invoice": ("invoice", "bill", "monthly bill", "statement"),
    # key words of one intent
    "charged": ("charged", "billed", "debited"),
    "fee": ("charge", "fee", "payment"),
    "statement": ("bank statement", "card statement", "invoice"),
    "refund": ("refund", "reimbursement", "money back"),
    "give_back": ("give me my money back", "send my money back", "refund me"),
    "cancel": ("cancel", "end", "terminate", "stop", "close"),
    "track": ("track", "check the status of", "locate"),
    "address": ("address", "shipping address", "delivery address", "home address"),
    "password": ("password", "passcode", "pin", "login details"),
    "log_in": ("log in", "sign in", "get into my account"),
    "crashing": ("crashing", "freezing", "shutting down", "logging me out"),
    "crashes": ("crashes", "freezes", "shuts down", "shows an error"),
    "card": ("card", "credit card", "debit card", "payment method", "bank card"),
}
_GREETINGS = ("hi", "hello", "hey", "good morning", "hello there", "dear support team", "hi team")
_CONTEXTS = ("i have been a customer for years", "this is really frustrating", "i already tried the help page",
             "this is urgent", "my account number is {account}", "i wrote to you {when}",
             "i placed an order {when}", "my friend has the same problem")
_CLOSINGS = ("please help", "thanks", "thank you", "thanks in advance", "can someone help me",
             "any help is appreciated", "please reply soon", "i need help with my account")
_ENDINGS = (".", "?", "!", "")
_REMARK_PROBABILITY = 0.5
_SLOT = re.compile(r"\{(\w+)\}")


def intents(n_per_intent: int = 100, seed: int = 0, noise: float = 0.05) -> pd.DataFrame:
    """Customer-service messages labelled with their intent (see the module docstring for how).

    Args:
        n_per_intent: messages per intent; the frame has ``n_per_intent * len(INTENTS)`` rows.
        seed: the random seed; the same arguments always give the same frame.
        noise: the probability that a word of three letters or more gets a typo (0 to 1).

    Returns:
        A DataFrame with the string columns ``text`` and ``intent`` (one of :data:`INTENTS`:
        billing, refund, cancel_subscription, delivery_status, change_address, password_reset,
        technical_issue, update_payment), rows in random order, index 0, 1, ...

    Raises:
        ValueError: ``n_per_intent`` is not a positive integer, ``seed`` not an integer, or
            ``noise`` not a number between 0 and 1.
    """
    check_positive_int("n_per_intent", n_per_intent)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    if isinstance(noise, bool) or not isinstance(noise, (int, float, np.number)) or not 0 <= noise <= 1:
        raise ValueError(f"noise must be a number between 0 and 1, got {noise!r}")
    rng = np.random.default_rng(seed)
    labels = [intent for intent in INTENTS for _ in range(n_per_intent)]
    texts = [_message(intent, rng, float(noise)) for intent in labels]
    order = rng.permutation(len(labels))
    return pd.DataFrame({"text": np.array(texts, dtype=object)[order], "intent": np.array(labels)[order]})


def _message(intent: str, rng: np.random.Generator, noise: float) -> str:
    """One message of ``intent``: template, politeness, context, typos, case and punctuation."""
    sentences = [_fill(_pick(_TEMPLATES[intent], rng), rng)]
    if rng.random() < _REMARK_PROBABILITY:
        other = _pick(tuple(name for name in INTENTS if name != intent), rng)
        sentences.insert(int(rng.integers(0, 2)), _pick(_REMARKS[other], rng))
    for context in rng.choice(_CONTEXTS, size=rng.integers(0, 3), replace=False):
        sentence = _fill(str(context), rng)
        sentences.insert(int(rng.integers(0, 2)) * len(sentences), sentence)  # before or after
    if rng.random() < 0.4:
        sentences.insert(0, _pick(_GREETINGS, rng))
    if rng.random() < 0.6:
        sentences.append(_pick(_CLOSINGS, rng))
    words = " ".join(sentences).split()
    text = " ".join(_typo(word, rng) if len(word) >= 3 and rng.random() < noise else word for word in words)
    if rng.random() < 0.5:
        text = text[0].upper() + text[1:]
    return text + _pick(_ENDINGS, rng)


def _fill(template: str, rng: np.random.Generator) -> str:
    """``template`` with each ``{slot}`` replaced by a random filler (references generated)."""

    def filler(match: re.Match) -> str:
        slot = match.group(1)
        if slot == "ref":
            return _pick(("#", "order ", "order no ", "ref "), rng) + str(rng.integers(10_000, 100_000))
        if slot == "amount":
            return _pick(("${:d}.99", "{:d} dollars", "{:d} euros"), rng).format(int(rng.integers(5, 200)))
        if slot == "account":
            return str(rng.integers(10_000, 100_000))
        return _pick(_SLOTS[slot], rng)

    return _SLOT.sub(filler, template)


def _typo(word: str, rng: np.random.Generator) -> str:
    """``word`` with one typing error: a letter dropped, doubled, or swapped with the next."""
    position = int(rng.integers(0, len(word) - 1))
    kind = int(rng.integers(0, 3))
    if kind == 0:
        return word[:position] + word[position + 1:]
    if kind == 1:
        return word[:position] + word[position] + word[position:]
    return word[:position] + word[position + 1] + word[position] + word[position + 2:]


def _pick(options: tuple[str, ...], rng: np.random.Generator) -> str:
    return options[int(rng.integers(0, len(options)))]
