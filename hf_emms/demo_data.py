"""The demo's dataset: short English sentences about six topics, generated here (so it is ours to ship: CC0).

Every sentence puts one or two topic words into a template shared by all topics, so the template carries no
label information and a model must know what the topic words *mean* to group them: each topic has 40 words, and
with a few hundred samples most words are seen once or twice. That is what separates a pretrained sentence
encoder from a random-init copy of it, which can only memorise token identities.
"""

from __future__ import annotations

import random

from .errors import InvalidInputError

__all__ = ["TOPICS", "topics_dataset"]

TOPICS: dict[str, tuple[str, ...]] = {
    "sports": (
        "football", "the goalkeeper", "a penalty kick", "the marathon", "tennis", "the referee", "a slam dunk",
        "the stadium", "the league table", "a hat trick", "the sprinter", "cycling", "the world cup", "basketball",
        "the coach", "a home run", "volleyball", "the tournament", "a knockout punch", "swimming", "the striker",
        "the relay race", "golf", "a free throw", "the quarterback", "hockey", "the finish line", "rugby",
        "the olympic games", "a gold medal", "cricket", "the pitch", "the team captain", "a sprint finish",
        "the boxing match", "skiing", "the playoffs", "the halftime score", "a rowing crew", "the championship",
    ),
    "cooking": (
        "the recipe", "a frying pan", "garlic", "the oven", "a pinch of salt", "the dough", "olive oil",
        "a wooden spoon", "the soup", "baking bread", "the chef", "chopped onions", "a saucepan", "the marinade",
        "roasted vegetables", "the kitchen knife", "pasta", "melted butter", "a cutting board", "the spices",
        "whisked eggs", "the grill", "a casserole", "fresh basil", "the dessert", "simmering stock", "flour",
        "a stir fry", "the seasoning", "pancakes", "a slow cooker", "the pastry", "minced beef", "the sauce",
        "a boiling pot", "cinnamon", "the salad dressing", "grated cheese", "a mixing bowl", "the cookbook",
    ),
    "weather": (
        "the forecast", "heavy rain", "a thunderstorm", "the temperature", "snowfall", "a heat wave", "the humidity",
        "strong winds", "a hurricane", "morning fog", "the drought", "a cold front", "hailstones", "the monsoon",
        "clear skies", "freezing drizzle", "a tornado", "the barometer", "lightning", "the dew point", "a blizzard",
        "sunshine", "the rainfall total", "an umbrella", "frost", "the weather map", "a gale warning", "the clouds",
        "a sleet shower", "sweltering heat", "the meteorologist", "a typhoon", "the wind chill", "black ice",
        "a rainbow", "the storm surge", "overcast skies", "a dust storm", "the first frost", "the flood warning",
    ),
    "finance": (
        "the stock market", "interest rates", "a mortgage", "the central bank", "inflation", "a savings account",
        "the dividend", "bond yields", "a loan", "the exchange rate", "quarterly earnings", "the portfolio",
        "a credit card", "the recession", "shares", "a pension fund", "the budget deficit", "tax returns",
        "an investment", "the hedge fund", "a bank account", "the bull market", "cryptocurrency", "the auditor",
        "a stock split", "the balance sheet", "mutual funds", "the brokerage", "a bankruptcy", "the credit score",
        "venture capital", "the trading floor", "a bear market", "the annual report", "compound interest",
        "the treasury", "a wire transfer", "the price index", "the shareholders", "a market crash",
    ),
    "travel": (
        "the airport", "a passport", "the hotel", "a train ticket", "the beach resort", "luggage", "the flight",
        "a road trip", "the tour guide", "a boarding pass", "the museum", "sightseeing", "a cruise ship",
        "the youth hostel", "jet lag", "the itinerary", "a backpack", "the border crossing", "a souvenir",
        "the departure gate", "a visa", "the city map", "camping", "the railway station", "a rental car",
        "the travel agent", "an island", "the ferry", "a suitcase", "the landmark", "holiday photos",
        "the mountain village", "a guided tour", "the check-in desk", "a window seat", "the old town",
        "a weekend getaway", "the tourist office", "the layover", "a hiking trail",
    ),
    "health": (
        "the doctor", "a fever", "the hospital", "vaccination", "a headache", "the pharmacy", "blood pressure",
        "a sore throat", "the nurse", "vitamins", "an allergy", "the dentist", "a broken arm", "the prescription",
        "physiotherapy", "a cough", "the clinic", "cholesterol", "a flu shot", "the surgeon", "insomnia",
        "a check-up", "the emergency room", "antibiotics", "a sprained ankle", "the diagnosis", "diabetes",
        "a blood test", "the therapist", "painkillers", "an infection", "the symptoms", "asthma", "a rash",
        "the waiting room", "nutrition", "a heart rate monitor", "the immune system", "a migraine", "the x-ray",
    ),
}

# Shared by every topic, so the frame itself says nothing about the label.
_TEMPLATES = (
    "We spent the whole evening talking about {a}.",
    "I read an article about {a} and {b} this morning.",
    "My neighbour keeps complaining about {a}.",
    "Has anyone else noticed {a} lately?",
    "The news tonight was mostly about {a} and {b}.",
    "She asked me what I thought of {a}.",
    "Nobody in the office could stop discussing {a}.",
    "There was a long podcast episode on {a} and {b}.",
    "Honestly, {a} was all anyone mentioned at dinner.",
    "He wrote a short blog post about {a}.",
)


def topics_dataset(n: int = 600, *, seed: int = 0):
    """``n`` generated sentences with balanced topic labels, as a ``datasets.Dataset``.

    Parameters
    ----------
    n : int
        Number of samples (classes are balanced to within one sample).
    seed : int
        Seed of the generator: the same (n, seed) gives the same dataset, byte for byte.

    Returns
    -------
    datasets.Dataset
        Columns ``text`` (string) and ``label`` (``ClassLabel`` with names ``sports, cooking, weather, finance,
        travel, health``).
    """
    from datasets import ClassLabel, Dataset, DatasetInfo, Features, Value

    if not 2 * len(TOPICS) <= n <= 6000:
        raise InvalidInputError(f"n must be between {2 * len(TOPICS)} and 6000 (distinct sentences per topic run out); "
                                f"got {n}.")
    rng = random.Random(seed)
    names = list(TOPICS)
    texts, labels, seen = [], [], set()
    while len(texts) < n:  # distinct sentences: duplicated inputs would be fitted exactly by any model
        label = len(texts) % len(names)
        a, b = rng.sample(TOPICS[names[label]], 2)
        text = rng.choice(_TEMPLATES).format(a=a, b=b)
        if text not in seen:
            seen.add(text)
            texts.append(text)
            labels.append(label)
    order = list(range(n))
    rng.shuffle(order)
    features = Features({"text": Value("string"), "label": ClassLabel(names=names)})
    info = DatasetInfo(dataset_name="topics", features=features,
                       description="hf-emms demo: generated sentences about six topics (CC0)")
    return Dataset.from_dict({"text": [texts[i] for i in order], "label": [labels[i] for i in order]}, info=info)
