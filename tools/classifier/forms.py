"""Requests as people phrase them, filled with the packages' own content.

The data packages rarely phrase a request the way people type it (bigbench
writes "summarize: <article>"), and a label learnt from one package's
style does not hold on anyone else's. These forms add the everyday
phrasings, casual and formal, with the instruction before or after the
pasted text; the same articles appear under summarize, extract and
translate, so only the instruction tells the labels apart. Hard negatives
are deliberate: a request to shorten a text is summarize (not creative), a
word problem is math (not code), "write a function that…" is code even
with no code in it.

None of this is evaluation data: classifier/eval/handwritten.txt is
written separately and never trained on, and the report's leave-one-
family-out table shows what these forms add on families they are not in.
"""

SUMMARIZE = [
    "Summarize the following article in {n} sentences: {doc}",
    "TL;DR this for me:\n{doc}",
    "Give me a brief summary of this text.\n\n{doc}",
    "Can you condense this into a few bullet points?\n{doc}",
    "{doc}\n\nSummarize the above in one paragraph.",
    "Write an executive summary of the following report: {doc}",
    "What are the key points of this article? {doc}",
    "Please shorten this to a two-line abstract: {doc}",
    "tldr pls {doc}",
    "sum this up for me: {doc}",
    "{doc}\n\ntl;dr?",
    "{doc}\n\nCan you give me the short version?",
    "make this shorter: {doc}",
    "I need a quick recap of this for a standup: {doc}",
    "Boil this down to {n} bullets: {doc}",
    "{doc}\n\nwhat's the main point here, in a sentence or two",
    "Can you summarise this news story? {doc}",
    "Write a {n}-sentence synopsis of this: {doc}",
    "Give me the highlights of the following:\n\n{doc}",
    "Could you write a concise summary of the text below for a newsletter?\n{doc}",
    "{doc}\n\nShorten the text above to about {w} words.",
    "Summary please:\n{doc}",
    "Recap this article in plain language: {doc}",
    "Reduce this passage to its essentials: {doc}",
    "{doc}\n\nPlease condense this into a short paragraph I can paste into an email.",
    "Give me a one-line summary of this: {doc}",
    "what is this article about, briefly? {doc}",
    "Create a short abstract for this text: {doc}",
]
SUMMARIZE_DIALOGUE = [
    "Summarize this conversation: {doc}",
    "{doc}\n\nsum up what they talked about",
    "give me a quick summary of this chat log:\n{doc}",
    "Recap the discussion below in {n} sentences.\n{doc}",
    "What did these people agree on? Keep it short.\n{doc}",
]
EXTRACT = [
    "Extract all person names mentioned in this text as a JSON list: {doc}",
    "List every date and place that appears in the following article: {doc}",
    "Pull out the company names and amounts of money from this text: {doc}",
    "From the article below, extract the people, organisations and locations.\n{doc}",
    "Find all the numbers in this passage and return them with their units: {doc}",
    "Return a JSON object with the fields who, what, when and where for this news item: {doc}",
    "get all the names out of this: {doc}",
    "{doc}\n\nlist the organisations mentioned above",
    "Which countries are mentioned in this text? {doc}",
    "{doc}\n\nExtract every date from the text above, one per line.",
    "pull the key facts (names, dates, figures) from this into a table: {doc}",
    "Fill this JSON from the article: {{\"people\": [], \"places\": [], \"dates\": []}}\n{doc}",
    "Identify the named entities in the following passage and label each as PERSON, ORG or LOC: {doc}",
    "What figures and percentages does this article quote? List them. {doc}",
    "Extract the quotes and who said them: {doc}",
    "{doc}\n\nFrom the text above, give me just the numbers and what they refer to.",
    "Find the job titles and the people holding them in this text: {doc}",
    "Pull out all locations from this article as a comma-separated list: {doc}",
    "Parse the following text and extract the event, the date and the place as JSON: {doc}",
    "Scan this and list any email addresses, phone numbers or URLs: {doc}",
]
EXTRACT_RECORD = [
    "Extract the name, email and phone from this: {rec}",
    "Parse this into JSON with fields for each value: {rec}",
    "get me the {field} from this text: {rec}",
    "{rec}\n\nWhat is the {field} here? Just the value.",
    "Turn this into a CSV row: {rec}",
    "Pull out the {field} and the date: {rec}",
]
RECORDS = [
    ("Order 88213 for Jana Novak, shipped 14 Feb 2023 to Brno, total 1,240 CZK, phone +420 601 222 333", "order number"),
    ("Invoice #7731 from Acme Tools Ltd, dated 2022-11-03, amount due 318.40 GBP by 2022-12-03", "amount due"),
    ("Booking ref QX7P2L: 2 nights at Hotel Lumen, check-in 5 June, guest Omar Haddad, omar.h@example.net", "booking reference"),
    ("Patient: R. Iyer, DOB 1987-04-12, allergy: penicillin, prescribed amoxicillin-free course on 3 Mar", "date of birth"),
    ("Ticket 4471 opened by k.lee@corp.io at 09:14 UTC: VPN drops every 10 minutes on build 2.3.1", "ticket number"),
    ("Receipt: 2x oat latte 4.20 each, 1x croissant 2.90, paid by card ending 8831 on 21/09/2024", "total"),
    ("Shipment DHL 00340434161094042557 from Rotterdam to Lyon, 3 pallets, ETA Thursday", "tracking number"),
    ("Meeting with Dr. Ana Costa, Clinica Vida, Rua Augusta 20, Lisboa, Tuesday 11:30", "address"),
    ("Candidate: Wei Zhang, 6 years Java, 2 years Kotlin, notice period 1 month, expected 95k EUR", "expected salary"),
    ("Lease: unit 4B, 12 Harbour Road, rent 1,850 USD monthly, deposit 3,700 USD, start 1 Aug 2024", "deposit"),
    ("Flight AF 1181 Paris CDG to Oslo, departs 07:55, seat 14C, passenger Ingrid Dahl", "seat"),
    ("Warranty claim W-2231, product: Bosch drill GSB 18V, purchased 2 May 2023, fault: battery not charging", "product"),
]
TRANSLATE = [
    "Translate the following into {lang}: {doc}",
    "How do you say this in {lang}? {doc}",
    "Please translate to {lang}: {doc}",
    "Translate this paragraph into {lang}:\n{doc}",
    "Render the following text in {lang}: {doc}",
    "{doc}\n\nTranslate the above into {lang}.",
    "{lang} translation please: {doc}",
    "can you put this in {lang} for me? {doc}",
    "translate to {lang} pls: {doc}",
    "What is this in {lang}: {doc}",
    "I need this text in {lang}, keep the tone: {doc}",
    "{doc}\n\n-> {lang}",
    "Translate from English to {lang}: {doc}",
]
TRANSLATE_FROM = [
    "Translate this into English: {doc}",
    "what does this say in english? {doc}",
    "{doc}\n\nCan you translate that to English?",
    "English please: {doc}",
    "Translate the following {src} text to English: {doc}",
    "I got this message, translate it for me: {doc}",
]
LANGUAGES = [
    "French", "Spanish", "German", "Italian", "Portuguese", "Japanese", "Chinese", "Korean", "Russian",
    "Dutch", "Polish", "Turkish", "Arabic", "Hindi", "Swedish", "Greek", "Vietnamese", "Czech",
    "Ukrainian", "Indonesian", "Hebrew", "Danish", "Finnish", "Norwegian", "Thai", "Romanian",
]
CODE_WITH_CODE = [
    "Fix the bug in this code:\n{code}",
    "Refactor this function to be more readable:\n{code}",
    "Add unit tests for the following code:\n{code}",
    "Explain what this code does, line by line:\n{code}",
    "Port this Python code to Rust:\n{code}",
    "why doesn't this work?\n{code}",
    "{code}\n\nthis throws an error, can you fix it",
    "Can you review this and suggest improvements?\n{code}",
    "add type hints and docstrings to this:\n{code}",
    "{code}\n\nrewrite this in {lang}",
    "make this faster:\n{code}",
]
CODE_REQUEST = [
    "write a {lang} function to {task}",
    "how do i {task} in {lang}",
    "{lang}: {task}",
    "Write a function that will {task}.",
    "I need a script to {task}",
    "Show me how to {task} using {lang}.",
    "what's the best way to {task} in {lang}?",
    "Can you implement code to {task}? Use {lang}.",
    "Write a program that can {task}.",
    "help me write {lang} code to {task}",
    "{lang} snippet to {task}",
    "Implement a method in {lang} to {task}.",
    "Create a small {lang} module that can {task}, with tests.",
    "give me a {lang} one-liner to {task}",
]
CODE_TASKS = [
    "parse a date string like 2024-05-01 into a date object", "count the words in a text file",
    "remove duplicates from a list while keeping the order", "download a web page and save it to disk",
    "send an email with an attachment", "validate an IPv4 address", "flatten a nested list",
    "read a JSON config file and print one field", "compute the sha256 of a file",
    "sort a list of dictionaries by a key", "convert a CSV file to JSON",
    "generate a random password of 16 characters", "find the most common element in an array",
    "page through results from a REST API", "retry an HTTP request with exponential backoff",
    "resize every image in a folder", "connect to PostgreSQL and run a query",
    "debounce a function", "implement a stack with push and pop", "implement a trie",
    "serialize a binary tree to a string", "parse command line arguments",
    "watch a directory for new files", "zip a folder", "calculate the days between two dates",
    "split a string by commas and trim the spaces", "convert a string to title case",
    "rate-limit calls to a function", "memoize an expensive function", "upload a file to S3",
    "parse an XML file and print every tag", "return the current time from an HTTP endpoint",
    "count lines of code in a repository", "find the shortest path in a weighted graph",
    "detect a cycle in a directed graph", "transpose a matrix", "make a thread-safe counter",
    "stream a large file line by line", "encode and decode base64",
    "validate a JSON payload against a schema", "run a job every hour",
    "log every request to a file", "hash a password before storing it", "tokenize an arithmetic expression",
    "scrape the headlines from a news site", "merge two dictionaries", "compute a moving average",
    "reverse the words in a sentence", "check if two strings are anagrams",
    "find duplicate files by their content", "create a users table with a unique email column",
    "read an Excel sheet into a dataframe", "draw a bar chart from a list of values",
    "handle a SIGTERM and shut down cleanly", "open a websocket and print incoming messages",
    "parse a URL into host, path and query", "turn a nested dict into dotted keys",
    "chunk a list into pieces of n", "convert between timezones", "extract all links from an HTML page",
]
CODE_AGENT = [
    "fix the failing test in {file}", "add a {feature} to the {component}",
    "refactor {component} so the {concern} lives in its own module", "the build is broken on {file}, please fix",
    "rename {ident} to {ident2} everywhere in the repo", "add logging to the {component}",
    "write a migration that adds a {column} column to the {table} table",
    "bump the {dep} dependency and fix whatever breaks", "make the {component} handle timeouts",
    "implement the TODO in {file}", "why is {file} throwing a null pointer exception?",
    "set up CI that runs the linter and tests on every pull request",
]
AGENT_FILLS = {
    "file": ["src/server.ts", "app/models/user.rb", "lib/parser.py", "cmd/main.go", "src/lib.rs", "tests/test_api.py"],
    "feature": ["dark mode toggle", "retry button", "health check endpoint", "CSV export", "search box", "rate limiter"],
    "component": ["checkout page", "auth middleware", "billing service", "settings screen", "upload handler", "cache layer"],
    "concern": ["validation", "retry logic", "database access", "error handling", "configuration"],
    "ident": ["getUser", "fetch_data", "OrderMgr", "tmpVal"],
    "ident2": ["loadUser", "load_records", "OrderService", "total"],
    "column": ["last_login", "deleted_at", "currency", "email_verified"],
    "table": ["users", "orders", "invoices", "sessions"],
    "dep": ["react", "tokio", "django", "lodash", "spring-boot"],
}
CODE_LANGS = [
    "Python", "JavaScript", "TypeScript", "Go", "Rust", "Java", "C#", "C++", "Ruby", "PHP", "bash",
    "Kotlin", "Swift", "python", "js", "golang",
]
MATH = [
    "what is {a} * {b}", "whats {p}% of {n}", "{a} divided by {b}?", "solve {a}x + {b} = {c}",
    "Solve for x: {a}x - {b} = {c}", "what's {a} squared plus {b} squared", "is {n} a prime number",
    "Find the derivative of {expr}", "integrate {expr} dx", "compute {a}! / {b}!",
    "What is the greatest common divisor of {a} and {n}?", "simplify ({a}x + {b})({c}x - {b})",
    "convert {p}/{n} to a decimal", "How much is {n} increased by {p} percent?",
    "If I save {a} dollars a week, how long until I have {n} dollars?",
    "A car travels {n} km in {b} hours. What is its average speed?",
    "A shirt costs {n} dollars after a {p}% discount. What was the original price?",
    "What is the probability of rolling a sum of {c} with two dice?",
    "How many ways can you choose {b} items from {a}?",
    "The sum of two numbers is {n} and their difference is {a}. Find the numbers.",
    "Calculate the area of a triangle with base {a} and height {b}.",
    "A rectangle is {a} m by {b} m. What is its diagonal?",
    "what's the square root of {n}", "Evaluate the limit of ({a}x^2 + {b}) / (x^2 + {c}) as x goes to infinity.",
    "Prove that {a}^n - 1 is divisible by {d} for every positive integer n.",
    "find x if {a}^x = {n}", "mean of {a}, {b}, {c} and {n}?",
]
MATH_EXPRS = ["x^3 - 4x", "sin(x) cos(x)", "e^(2x)", "ln(x^2 + 1)", "x e^x", "1/x", "sqrt(x)", "tan(x)"]
CREATIVE = [
    "Write a short story about {t}.", "Write a poem about {t}.", "Compose a haiku about {t}.",
    "Write a limerick featuring {t}.", "Write song lyrics about {t}.", "Write a bedtime fairy tale involving {t}.",
    "Write a funny tweet about {t}.", "Draft the opening paragraph of a novel that involves {t}.",
    "Write a sonnet inspired by {t}.", "Invent a dialogue between two characters about {t}.",
    "Come up with a catchy slogan for {t}.", "Write a creative product description for {t}.",
    "write me a poem about {t}", "tell me a story about {t}", "can you write a short scary story with {t}",
    "make up a fable about {t} with a moral at the end", "Write a rap verse about {t}.",
    "write a kids' rhyme about {t}", "Write a scene for a play where {t} changes someone's life.",
    "Compose a free-verse poem about {t} and memory.", "write a 100-word flash fiction piece about {t}",
    "Create a myth that explains {t}.", "Write a love poem that mentions {t}.",
    "give me a funny short story involving {t}", "Write the first chapter of a mystery involving {t}.",
    "Write a ballad about {t}.", "pen a short ode to {t}", "Write a comedic monologue about {t}.",
]
# Creative work from a pasted text is creative, not summarize: the text is
# material, the request is to make something new of it.
CREATIVE_FROM_TEXT = [
    "Write a short story based on the following background:\n{doc}",
    "{doc}\n\nTurn the text above into a poem.",
    "Adapt this into a scene for a screenplay, with dialogue: {doc}",
    "Using this as inspiration, write the opening chapter of a novel: {doc}",
    "{doc}\n\nWrite a piece of fan fiction set in this world.",
    "Here is some material for a story. Write a 500-word story from it.\n{doc}",
    "Rewrite this as a fairy tale for children: {doc}",
    "Based on the notes below, write song lyrics.\n{doc}",
    "{doc}\n\nNow write a dramatic monologue from the point of view of someone in this text.",
    "Write a stage play outline with three acts inspired by this: {doc}",
]
CHAT = [
    "what do you think about {topic}?", "tell me something interesting about {topic}",
    "any tips for {activity}?", "how does {thing} work?", "can you recommend a good {item}?",
    "should I {choice}?", "I'm thinking about {activity}, is it a good idea?",
    "why do people like {topic}?", "what's the history of {topic}?", "hi! quick question about {topic}",
    "Is it true that {thing} is dangerous?", "What's your opinion on {topic}?",
    "explain {thing} to me like I'm five", "what should I know before {activity}?",
]
CHAT_FILLS = {
    "topic": ["jazz", "electric cars", "the Roman empire", "minimalism", "coffee", "social media", "chess",
              "video games", "marathons", "house plants", "remote work", "the olympics", "volcanoes", "tea"],
    "activity": ["running a marathon", "moving abroad", "starting a garden", "learning piano", "camping alone",
                 "adopting a cat", "going back to school", "travelling to Japan", "quitting caffeine"],
    "thing": ["a microwave", "the immune system", "wifi", "inflation", "a credit score", "photosynthesis",
              "an airplane wing", "the moon's tides", "a heat pump", "GPS"],
    "item": ["podcast", "board game", "hiking trail", "documentary", "novel", "laptop for students", "recipe for dinner"],
    "choice": ["take the job offer", "buy a used car", "learn French or Italian", "get a dog", "switch careers"],
}
