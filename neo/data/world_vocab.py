"""The words of the demo world: one vocabulary per latent topic, so generated titles and descriptions carry
meaning (items of one topic share words and are close in any text embedding)."""

from __future__ import annotations

from typing import NamedTuple


class Topic(NamedTuple):
    name: str
    show_prefixes: tuple[str, ...]
    show_nouns: tuple[str, ...]
    subjects: tuple[str, ...]
    keywords: tuple[str, ...]


TOPICS: tuple[Topic, ...] = (
    Topic("true crime", ("Midnight", "Cold", "Hidden", "Silent", "Dark", "Unsolved"),
          ("Case Files", "Evidence", "Confessions", "Verdict", "Witness", "Alibi"),
          ("cold cases", "forensic science", "famous heists", "wrongful convictions", "cybercrime",
           "missing persons", "courtroom trials", "mafia families", "con artists", "serial killers"),
          ("detective", "suspect", "murder", "investigation", "police", "crime scene", "jury", "motive",
           "interrogation", "DNA evidence", "prison", "fraud")),
    Topic("jazz", ("Blue", "Late Night", "Smoky", "Swing", "Cool", "Golden"),
          ("Sessions", "Standards", "Grooves", "Notes", "Quartet", "Lounge"),
          ("bebop", "Miles Davis", "big band swing", "jazz piano", "modal jazz", "vocal jazz",
           "the Blue Note label", "free jazz", "jazz fusion", "New Orleans jazz"),
          ("saxophone", "trumpet", "improvisation", "rhythm section", "solo", "chord changes", "club",
           "record", "groove", "standard", "bassline", "swing feel")),
    Topic("history", ("Ancient", "Forgotten", "Imperial", "Lost", "Great", "Medieval"),
          ("Chronicles", "Empires", "Dynasties", "Annals", "Battles", "Eras"),
          ("the Roman Empire", "ancient Egypt", "the Cold War", "the French Revolution", "Viking voyages",
           "the Ottoman Empire", "World War II", "the Silk Road", "the Renaissance", "the Mongol conquests"),
          ("emperor", "archive", "kingdom", "revolution", "treaty", "archaeology", "dynasty", "war",
           "civilization", "monarch", "chronicle", "siege")),
    Topic("cooking", ("Kitchen", "Slow", "Spice", "Sunday", "Hungry", "Fresh"),
          ("Table", "Recipes", "Pantry", "Plates", "Kitchen Talk", "Bites"),
          ("sourdough baking", "Italian pasta", "knife skills", "fermentation", "vegetarian dinners",
           "barbecue", "French pastry", "street food", "one-pot meals", "Japanese home cooking"),
          ("recipe", "chef", "ingredients", "oven", "flavour", "seasoning", "dough", "sauce", "kitchen",
           "herbs", "restaurant", "tasting")),
    Topic("technology", ("Byte", "Future", "Silicon", "Open", "Digital", "Signal"),
          ("Stack", "Circuit", "Labs", "Code Review", "Protocol", "Frontier"),
          ("artificial intelligence", "startups", "open source", "cybersecurity", "smartphones",
           "cloud computing", "robotics", "programming languages", "semiconductors", "privacy online"),
          ("software", "engineer", "algorithm", "data", "chip", "network", "app", "developer",
           "machine learning", "hardware", "product launch", "code")),
    Topic("comedy", ("Very", "Totally", "Wildly", "Almost", "Mostly", "Barely"),
          ("Funny", "Awkward Hour", "Laughs", "Improv Club", "Banter", "Roast"),
          ("stand-up specials", "improv games", "sketch writing", "celebrity impressions", "awkward dates",
           "office life", "family holidays", "embarrassing stories", "satire news", "road trip mishaps"),
          ("joke", "laugh", "comedian", "punchline", "banter", "sketch", "prank", "roast", "silly",
           "hilarious", "gag", "stage")),
    Topic("science", ("Curious", "Quantum", "Deep", "Cosmic", "Bright", "Tiny"),
          ("Universe", "Lab Notes", "Discoveries", "Experiments", "Theory", "Questions"),
          ("black holes", "the human brain", "climate change", "evolution", "quantum physics",
           "the deep ocean", "genetics", "space exploration", "volcanoes", "particle physics"),
          ("experiment", "scientist", "research", "theory", "telescope", "molecule", "physics", "biology",
           "discovery", "laboratory", "hypothesis", "data")),
    Topic("business", ("Bottom Line", "Market", "Growth", "Founder", "Smart", "Capital"),
          ("Money Talks", "Balance Sheet", "Boardroom", "Ventures", "Ledger", "Pitch"),
          ("personal finance", "stock markets", "entrepreneurship", "leadership", "negotiation",
           "real estate", "economics", "marketing", "venture capital", "retirement planning"),
          ("investor", "budget", "company", "profit", "strategy", "market", "economy", "CEO", "revenue",
           "savings", "interest rates", "startup")),
    Topic("sports", ("Full Time", "Overtime", "Game Day", "Final Whistle", "Home Field", "Fast Break"),
          ("Report", "Locker Room", "Playbook", "Scoreboard", "Huddle", "Pitchside"),
          ("football tactics", "basketball legends", "tennis majors", "marathon running", "the Olympics",
           "cycling tours", "boxing history", "cricket", "Formula 1", "baseball stats"),
          ("coach", "athlete", "championship", "team", "match", "season", "training", "stadium", "goal",
           "transfer", "league", "fans")),
    Topic("wellness", ("Calm", "Mindful", "Gentle", "Daily", "Balanced", "Quiet"),
          ("Breath", "Reset", "Space", "Moments", "Practice", "Retreat"),
          ("guided meditation", "sleep stories", "yoga practice", "stress relief", "nutrition",
           "mindfulness at work", "breathing exercises", "habit building", "running for beginners",
           "mental health"),
          ("meditation", "breath", "relaxation", "sleep", "calm", "body", "mind", "anxiety", "focus",
           "healing", "gratitude", "routine")),
    Topic("fantasy", ("Dragon", "Shadow", "Crown", "Ember", "Silver", "Wild"),
          ("Tales", "Realms", "Sagas", "Legends", "Quest", "Chronicles of Myth"),
          ("dragons", "epic quests", "dark magic", "elven kingdoms", "sword and sorcery", "fairy tales",
           "prophecies", "wizard schools", "lost kingdoms", "mythical beasts"),
          ("wizard", "sword", "magic", "kingdom", "dragon", "spell", "quest", "castle", "prophecy",
           "knight", "sorcerer", "realm")),
    Topic("science fiction", ("Orbital", "Neon", "Starlight", "Android", "Deep Space", "Parallel"),
          ("Signals", "Colony", "Transmissions", "Drift", "Outpost", "Frontier Stories"),
          ("space opera", "time travel", "first contact", "cyberpunk cities", "robot uprisings",
           "Mars colonies", "dystopian futures", "alien worlds", "generation ships", "virtual reality"),
          ("starship", "alien", "android", "galaxy", "future", "colony", "laser", "planet", "AI",
           "spacecraft", "wormhole", "cyborg")),
    Topic("parenting", ("Happy", "Tired", "Modern", "Little", "Growing", "Busy"),
          ("Parents", "Family Table", "Kids Corner", "Nursery", "Household", "Home Front"),
          ("newborn sleep", "toddler tantrums", "screen time", "school choices", "teenagers",
           "sibling rivalry", "family meals", "working parents", "bedtime routines", "adoption"),
          ("baby", "toddler", "school", "family", "parent", "bedtime", "child", "teen", "homework",
           "playground", "routine", "nanny")),
    Topic("travel", ("Wander", "Open Road", "Passport", "Far Away", "Backpack", "Compass"),
          ("Journeys", "Postcards", "Detours", "Itineraries", "Expeditions", "Travelogue"),
          ("Japan", "road trips", "budget backpacking", "island hopping", "national parks", "train travel",
           "European cities", "food tourism", "hiking trails", "solo travel"),
          ("flight", "hotel", "itinerary", "passport", "journey", "beach", "mountain", "city", "map",
           "culture", "souvenir", "adventure")),
    Topic("classical music", ("Adagio", "Concert", "Opus", "Symphonic", "Royal", "Grand"),
          ("Hall", "Overture", "Movements", "Sonatas", "Recital", "Conservatory"),
          ("Beethoven symphonies", "Baroque music", "opera", "piano concertos", "string quartets",
           "Mozart", "film scores", "choral music", "Romantic composers", "minimalism"),
          ("orchestra", "composer", "symphony", "conductor", "violin", "piano", "score", "aria", "concerto",
           "cello", "harmony", "premiere")),
    Topic("politics", ("Capitol", "Ballot", "Policy", "Inside", "Frontline", "Public"),
          ("Briefing", "Debate", "Roundtable", "Dispatch", "Agenda", "Press Room"),
          ("elections", "foreign policy", "the Supreme Court", "climate policy", "healthcare reform",
           "immigration", "campaign strategy", "local government", "trade deals", "civil rights"),
          ("senator", "vote", "policy", "election", "parliament", "campaign", "law", "government",
           "diplomacy", "reform", "poll", "democracy")),
)

FIRST_NAMES = ("Ada", "Ben", "Clara", "Dev", "Elena", "Felix", "Grace", "Hugo", "Iris", "Jonas", "Kira", "Liam",
               "Maya", "Noah", "Olga", "Pablo", "Quinn", "Rosa", "Sami", "Tara", "Uma", "Victor", "Wen",
               "Ximena", "Yusuf", "Zoe", "Amara", "Bruno", "Chloe", "Dmitri", "Esme", "Farid")
LAST_NAMES = ("Abbott", "Baptiste", "Castro", "Dubois", "Eriksen", "Fischer", "Garcia", "Haddad", "Ito",
              "Jansen", "Kowalski", "Larsen", "Moreau", "Nakamura", "Okafor", "Petrov", "Quintero", "Rossi",
              "Sato", "Tanaka", "Usman", "Vargas", "Weber", "Xu", "Yilmaz", "Zhou", "Almeida", "Brennan",
              "Chandra", "Delgado", "Engel", "Fontaine")
EPISODE_FORMATS = ("deep dive", "interview", "explainer", "listener Q&A", "roundtable", "field report",
                   "beginner's guide", "news roundup")
BOOK_PATTERNS = ("The Story of {s}", "{S}: A History", "Understanding {s}", "A Short Guide to {s}",
                 "The Secret Life of {s}", "Notes on {s}", "Everything About {s}", "The Book of {s}")
SURFACES = ("home", "search", "autoplay", "recommended", "library")
DEVICES = ("phone", "smart speaker", "desktop", "car", "tablet")
