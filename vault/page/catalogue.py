"""The consent page in English: each Dutch phrase of the page, and its English words.

Dutch is the page's own language and the key of the catalogue, so a template reads as the
page does: ``{{ _("Kies wat {name} mag zien", name=party.name) }}``. ``translator("en")``
looks a phrase up and fills in its ``{fields}``; a phrase without an English entry stays
Dutch, and ``tests/unit/consent/test_page_catalogue.py`` checks that none is missing.
Sentences built from grants and from the access log are made in both languages in
``words.py``.

Over 500 lines: one table of every phrase of the page and its English words; split into
parts it would only be harder to check that none is missing.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["ENGLISH", "LANGUAGE_COOKIE", "language_of", "translator"]

LANGUAGE_COOKIE = "rk_lang"

ENGLISH: dict[str, str] = {
    # base.html, login.html
    "Naar de inhoud": "Skip to content",
    "Hoofdmenu": "Main menu",
    "Wie mag wat zien": "Who may see what",
    "Mijn plan": "My plan",
    "Mijn netwerk": "My network",
    "Wie heeft er gekeken": "Who has looked",
    "Mijn gegevens": "My data",
    "Wat je mag zien": "What you may see",
    "Ingelogd als {name}": "Logged in as {name}",
    "(namens {name})": "(on behalf of {name})",
    "Uitloggen": "Log out",
    "Inloggen": "Log in",
    "In je kluis staat jouw plan. Jij bepaalt wie het mag zien.": (
        "Your vault holds your plan. You decide who may see it."
    ),
    "Inloggen met DigiD": "Log in with DigiD",
    "Of log in met je gebruikersnaam": "Or log in with your user name",
    "Gebruikersnaam": "User name",
    "Wachtwoord": "Password",
    "Je hebt te vaak een verkeerd wachtwoord ingevuld. Wacht een kwartier en probeer het "
    "dan opnieuw.": (
        "You entered a wrong password too often. Wait a quarter of an hour and try again."
    ),
    "Je gebruikersnaam of wachtwoord klopt niet. Probeer het opnieuw.": (
        "Your user name or password is not right. Try again."
    ),
    # home.html, share.html, confirm.html, stop.html, look_as.html
    "Je keuze is opgeslagen.": "Your choice has been saved.",
    "Je deelt nu niets meer. Niemand kan je plan nog zien.": (
        "You share nothing now. Nobody can see your plan any more."
    ),
    "Hier zie je wie je plan mag zien. Jij kiest wat ze zien en tot wanneer.": (
        "Here you see who may see your plan. You choose what they see and until when."
    ),
    "Kies wat {name} mag zien": "Choose what {name} may see",
    "Bekijk wat {name} ziet": "Look at what {name} sees",
    "Stop met delen met {name}": "Stop sharing with {name}",
    "Delen met een andere organisatie": "Share with another organisation",
    "Organisatie": "Organisation",
    "Verder": "Next",
    "Alles stoppen": "Stop everything",
    "Wil je dat niemand meer iets ziet? Dat kan met één knop.": (
        "Do you want nobody to see anything any more? One button does that."
    ),
    "Stop met alles delen": "Stop sharing everything",
    "Wat mag {name} zien": "What may {name} see",
    "Wat mag {name} zien?": "What may {name} see?",
    "Nu:": "Now:",
    "{name} mag zien:": "{name} may see:",
    "{name} mag ook veranderen:": "{name} may also change:",
    "Tot en met welke dag?": "Until which day (inclusive)?",
    "Terug, niets veranderen": "Back, change nothing",
    "Klopt dit?": "Is this right?",
    "Ja, opslaan": "Yes, save",
    "Nee, ik wil het anders": "No, I want it different",
    "Stop met alles delen?": "Stop sharing everything?",
    "Niemand mag dan nog iets zien van je plan. Dat gaat meteen in.": (
        "Then nobody may see anything of your plan. This starts at once."
    ),
    "Je kunt later weer kiezen om iets te delen.": "Later you can choose to share again.",
    "Ja, stop met alles delen": "Yes, stop sharing everything",
    "Nee, terug": "No, back",
    "Wat {name} ziet": "What {name} sees",
    "Dit ziet {name} nu": "This is what {name} sees now",
    "{name} heeft nog geen computersysteem dat met de kluis praat. Daarom ziet {name} nu niets.": (
        "{name} has no computer system yet that talks to the vault. So {name} sees nothing now."
    ),
    "{name} ziet nu niets van je plan.": "{name} sees nothing of your plan now.",
    "Terug": "Back",
    # _resources.html, shared_with_me.html
    "Naam en adres": "Name and address",
    "Doelen": "Goals",
    "Plan": "Plan",
    "Netwerk": "Network",
    "Mensen in het netwerk": "People in the network",
    "Evaluatie (cijfers)": "Evaluation (scores)",
    "Toestemmingen": "Consents",
    "Naam": "Name",
    "{count} mensen en organisaties": "{count} people and organisations",
    "Toestemming (geldt)": "Consent (in force)",
    "Toestemming (gestopt)": "Consent (stopped)",
    "Dit is wat de inwoner met jou deelt.": "This is what the inwoner shares with you.",
    "Je mag nu niets zien.": "You may see nothing now.",
    # plan.html
    "Opgeslagen.": "Saved.",
    "Wat wil ik?": "What do I want?",
    "Je doelen, in je eigen woorden. Het belangrijkste staat bovenaan. Met de knoppen "
    "omhoog en omlaag zet je ze in je eigen volgorde.": (
        "Your goals, in your own words. The most important one is at the top. With the "
        "up and down buttons you put them in your own order."
    ),
    "Doel {number}": "Goal {number}",
    "Heel belangrijk": "Very important",
    "Belangrijk": "Important",
    "Minder belangrijk": "Less important",
    "Doel {number} omhoog": "Goal {number} up",
    "Doel {number} omlaag": "Goal {number} down",
    "Nieuw doel": "New goal",
    "Wat wil je?": "What do you want?",
    "Waar gaat het over?": "What is it about?",
    "Financiën": "Money",
    "Wonen": "Housing",
    "Relaties": "Relationships",
    "Dagbesteding": "Daytime activities",
    "Gezondheid": "Health",
    "Opvoeding": "Raising children",
    "Doel toevoegen": "Add goal",
    "Wat kan ik?": "What can I do?",
    "Wat je zelf doet, en wat mensen om je heen doen.": (
        "What you do yourself, and what people around you do."
    ),
    "Ik": "Me",
    "Opslaan": "Save",
    "Wat ga jij zelf doen?": "What will you do yourself?",
    "Toevoegen": "Add",
    "Wat heb ik nodig?": "What do I need?",
    "Hulp en afspraken met organisaties.": "Help and agreements with organisations.",
    "Hoe gaat het?": "How is it going?",
    "Je cijfers van 1 tot 10, per onderwerp.": "Your scores from 1 to 10, per subject.",
    "Je cijfers per onderwerp door de tijd": "Your scores per subject over time",
    "Onderwerp": "Subject",
    "Welk cijfer geef je het nu? (1 tot 10)": "What score do you give it now? (1 to 10)",
    "Cijfer opslaan": "Save score",
    # network.html, invitation.html
    "Stuur deze link naar de persoon die je uitnodigt. De link werkt één keer en 7 dagen "
    "lang.": "Send this link to the person you invite. The link works once, for 7 days.",
    "Uitnodiging": "Invitation",
    "De mensen om je heen. Nodig iemand uit: die maakt een account en ziet alleen wat jij deelt.": (
        "The people around you. Invite someone: they make an account and see only what you share."
    ),
    "Heeft een account.": "Has an account.",
    "Mag namens jou kiezen wie wat ziet ({basis}).": (
        "May choose who sees what on your behalf ({basis})."
    ),
    "Mag {name} namens jou kiezen wie wat ziet?": (
        "May {name} choose who sees what on your behalf?"
    ),
    "Nee": "No",
    "Ja, als {basis}": "Yes, as {basis}",
    "machtiging": "mandate (machtiging)",
    "mentor": "mentor",
    "curator": "curator",
    "ouder met gezag": "parent with parental authority",
    "Nodig {name} uit": "Invite {name}",
    "Iemand nieuw uitnodigen": "Invite someone new",
    "Wie is het voor jou? (bijvoorbeeld buurman, tante, vriendin)": (
        "Who is it to you? (for example neighbour, aunt, friend)"
    ),
    "Maak een uitnodiging": "Make an invitation",
    "Je bent uitgenodigd": "You have been invited",
    "Maak een account. Daarna zie je wat de inwoner met jou deelt. Niet meer.": (
        "Make an account. Then you see what the inwoner shares with you. Nothing more."
    ),
    "Je naam": "Your name",
    "Kies een gebruikersnaam": "Choose a user name",
    "Kies een wachtwoord (minstens {min_length} tekens)": (
        "Choose a password (at least {min_length} characters)"
    ),
    "Typ het wachtwoord nog een keer": "Type the password once more",
    "Account maken": "Make account",
    "Kies een naam van minstens 3 tekens. Kies een wachtwoord van minstens {min_length} "
    "tekens. Typ het wachtwoord twee keer hetzelfde.": (
        "Choose a name of at least 3 characters. Choose a password of at least {min_length} "
        "characters. Type the password the same twice."
    ),
    "Deze naam is al in gebruik. Kies een andere.": (
        "This name is already in use. Choose another one."
    ),
    # log.html
    "Hier zie je wie je gegevens heeft bekeken of veranderd. Het nieuwste staat bovenaan.": (
        "Here you see who viewed or changed your data. The newest is at the top."
    ),
    "Laat zien": "Show",
    "Iedereen behalve jij": "Everyone but you",
    "Iedereen, ook jij": "Everyone, you too",
    "Alleen {name}": "Only {name}",
    "Nog niemand heeft gekeken.": "Nobody has looked yet.",
    # data.html, erase.html, erased.html, error.html
    "Alles downloaden": "Download everything",
    "Download mijn gegevens": "Download my data",
    "Mijn kluis wissen": "Erase my vault",
    "Alles in je kluis wordt dan onleesbaar. Niemand kan er nog bij, ook jij niet. Dit kun "
    "je niet terugdraaien.": (
        "Everything in your vault then becomes unreadable. Nobody can get to it, you "
        "neither. You cannot undo this."
    ),
    "Weet je het zeker?": "Are you sure?",
    "Download eerst je gegevens als je ze wilt bewaren.": (
        "Download your data first if you want to keep it."
    ),
    "Typ WISSEN om je kluis te wissen": "Type WISSEN to erase your vault",
    "Typ het woord WISSEN om te laten zien dat je het zeker weet.": (
        "Type the word WISSEN to show that you are sure."
    ),
    "Ja, wis alles": "Yes, erase everything",
    "Je kluis is gewist": "Your vault has been erased",
    "Je gegevens zijn niet meer te lezen. Niemand kan er nog bij. Je bent uitgelogd.": (
        "Your data can no longer be read. Nobody can get to it. You have been logged out."
    ),
    "Terug naar het begin": "Back to the start",
    # refusals (router.py)
    "Alleen de inwoner en een vertegenwoordiger kunnen dit.": (
        "Only the inwoner and a representative can do this."
    ),
    "Alleen de inwoner zelf kan dit.": "Only the inwoner can do this.",
    "Cijfer klopt niet": "The score is not right",
    "Dat klopt niet": "That is not right",
    "Dat lukte niet": "That did not work",
    "Dat mag niet": "That is not allowed",
    "Datum klopt niet": "The date is not right",
    "De link is al gebruikt of is verlopen.": "The link has been used or has expired.",
    "De link is al gebruikt of is verlopen. Vraag om een nieuwe uitnodiging.": (
        "The link has been used or has expired. Ask for a new invitation."
    ),
    "De link is al gebruikt.": "The link has already been used.",
    "Deze link werkt niet meer": "This link no longer works",
    "Deze organisatie of persoon kennen we niet.": ("We do not know this organisation or person."),
    "Deze pagina bestaat niet.": "This page does not exist.",
    "Deze persoon heeft nog geen account.": "This person has no account yet.",
    "Deze persoon kennen we niet.": "We do not know this person.",
    "Dit doel kennen we niet.": "We do not know this goal.",
    "Dit formulier is niet geldig": "This form is not valid",
    "Het formulier kwam niet van deze pagina of is te oud. Ga terug, laad de pagina opnieuw "
    "en probeer het nog een keer.": (
        "The form did not come from this page or is too old. Go back, load the page again "
        "and try once more."
    ),
    "Het inlogformulier is te oud of kwam niet van deze pagina. Laad de pagina opnieuw en "
    "probeer het nog een keer.": (
        "The login form is too old or did not come from this page. Load the page again and "
        "try once more."
    ),
    "Inloggen lukte niet": "Logging in did not work",
    "Je bent gestopt met inloggen. Wil je toch inloggen? Ga terug naar de inlogpagina.": (
        "You stopped logging in. Do you want to log in after all? Go back to the login page."
    ),
    "Je bent ingelogd bij DigiD, maar er is nog geen kluis voor jou. Vraag je sociaal team "
    "om een kluis voor je te maken.": (
        "You logged in with DigiD, but there is no vault for you yet. Ask your sociaal team "
        "to make a vault for you."
    ),
    "Je bent niet ingelogd": "You are not logged in",
    "Kies een doel en omhoog of omlaag.": "Choose a goal and up or down.",
    "Kies een onderwerp en een cijfer van 1 tot 10.": "Choose a subject and a score from 1 to 10.",
    "Kies iemand en een reden.": "Choose someone and a reason.",
    "Kies iemand, of vul de naam in van wie je uitnodigt.": (
        "Choose someone, or fill in the name of who you invite."
    ),
    "Laad de pagina opnieuw.": "Load the page again.",
    "Niet gevonden": "Not found",
    "Nog geen account": "No account yet",
    "Schrijf in je eigen woorden wat je wilt.": "Write in your own words what you want.",
    "Schrijf op wat je doet of wat je nodig hebt.": "Write down what you do or what you need.",
    "Vul iets in": "Fill something in",
    "We kennen je nog niet": "We do not know you yet",
    "We konden niet controleren wie je bent. Er is niets opgeslagen. Ga terug naar de "
    "inlogpagina en probeer het opnieuw.": (
        "We could not check who you are. Nothing was saved. Go back to the login page and "
        "try again."
    ),
    # stoppen: apps, roles that stay, the network, the log's visits (issue 11, issue 18)
    "Je deelt nu niets meer. Organisaties en apps kunnen niets meer zien.": (
        "You share nothing now. Organisations and apps can see nothing any more."
    ),
    "{name} blijft je ouder met gezag. Dat staat in de wet, omdat je nog geen 18 bent.": (
        "{name} stays your parent with authority. The law says so, because you are not 18 yet."
    ),
    "{name} blijft je curator. Dat heeft de rechter besloten.": (
        "{name} stays your curator. A judge decided that."
    ),
    "{name} blijft je mentor. Dat heeft de rechter besloten.": (
        "{name} stays your mentor. A judge decided that."
    ),
    "{name} is gestopt. Deze app kan nu niets meer zien of doen.": (
        "{name} has been stopped. This app can no longer see or do anything."
    ),
    "Apps die je gebruikt": "Apps you use",
    "Mag sinds {day}:": "Allowed since {day} to:",
    "Laatst gebruikt: {moment}": "Last used: {moment}",
    "Stop {name}": "Stop {name}",
    "Geen enkele app kan nu je plan zien.": "No app can see your plan now.",
    "Ook je apps stoppen. Iemand met een machtiging mag dan niet meer namens jou kiezen.": (
        "Your apps stop too. Someone with a mandate may then no longer choose for you."
    ),
    "Een mentor of curator van de rechter, of een ouder met gezag, blijft. Dat kun je niet "
    "zelf stoppen.": (
        "A mentor or curator appointed by a judge, or a parent with authority, stays. You "
        "cannot stop that yourself."
    ),
    "Weggehaald. Deze persoon kan nu niets meer zien.": (
        "Removed. This person can no longer see anything."
    ),
    "Haal {name} weg uit je netwerk": "Remove {name} from your network",
    "Deze app kennen we niet.": "We do not know this app.",
    "Deze pagina van het logboek bestaat niet.": "This page of the log does not exist.",
    "Hier zie je wie je gegevens heeft bekeken of veranderd. Het nieuwste staat bovenaan. "
    "Eén bezoek is één regel.": (
        "Here you see who looked at or changed your data. The newest is at the top. One "
        "visit is one line."
    ),
    "Wie": "Who",
    "Wat": "What",
    "Alleen jij": "Only you",
    "Alles": "Everything",
    "Bekeken": "Looked at",
    "Veranderd": "Changed",
    "Mocht niet": "Not allowed",
    "tussen {start} en {end}": "between {start} and {end}",
    "Bekijk alle {n} keren": "See all {n} times",
    "En nog {n} keer.": "And {n} more times.",
    "Bladeren in het logboek": "Browse the log",
    "Naar het nieuwste": "To the newest",
    "Eerder": "Earlier",
    # plan.html: outcome reports and the plan on a phone (issue 14)
    "Verander": "Change",
    "doel {number}": "goal {number}",
    "Hoe vind je de manier van werken?": "What do you think of the way of working?",
    "Geef de manier waarop we samen aan je plan werken een cijfer.": (
        "Give the way we work on your plan together a mark."
    ),
    "Je laatste cijfer: {rating}.": "Your last mark: {rating}.",
    "Welk cijfer geef je de manier van werken? (1 tot 10)": (
        "What mark do you give the way of working? (1 to 10)"
    ),
    "Cijfer voor de werkwijze opslaan": "Save the mark for the way of working",
    "Waar staat je plan?": "Where is your plan now?",
    "Kies de stap waar je plan nu is": "Choose the step your plan is at now",
    "Contact": "Contact",
    "Verkennen": "Exploring",
    "Samenwerkoverleg": "Meeting of everyone involved",
    "Samen op weg": "On our way together",
    "Evaluatie": "Evaluation",
    "Stap opslaan": "Save the step",
    "Meetellen zonder naam": "Being counted without your name",
    "Mag de gemeente je plan meetellen in een overzicht zonder namen? Niemand ziet dan "
    "jouw naam of jouw plan.": (
        "May the municipality count your plan in an overview without names? Nobody sees "
        "your name or your plan."
    ),
    "Ja, tel mij mee": "Yes, count me",
    "Nee, tel mij niet mee": "No, do not count me",
    "Je kunt dit altijd weer veranderen. Een overzicht van een periode die al voorbij is, "
    "blijft zoals het was.": (
        "You can always change this. An overview of a period that has already ended stays "
        "as it was."
    ),
    "Keuze opslaan": "Save your choice",
    "Kies een van de stappen.": "Choose one of the steps.",
    "Kies een cijfer van 1 tot 10.": "Choose a mark from 1 to 10.",
    "Kies ja of nee.": "Choose yes or no.",
    # invitation.html, network.html: who invites, and sharing the link (issue 14)
    "{name} nodigt je uit": "{name} invites you",
    "Maak een account. Daarna zie je wat {name} met jou deelt. Niet meer.": (
        "Make an account. Then you see what {name} shares with you. Nothing more."
    ),
    "Uitnodiging voor mijn plan": "Invitation to my plan",
    "Stuur de link per e-mail": "Send the link by e-mail",
    "Stuur de link in een bericht": "Send the link in a text message",
    # issue 18: one name per control, focus on the answer, a Dutch date, plain words
    "Menu": "Menu",
    "Op deze pagina": "On this page",
    "Opgeslagen": "Saved",
    "Je keuze is opgeslagen": "Your choice is saved",
    "Fout:": "Mistake:",
    "zien": "see",
    "veranderen": "change",
    "Doel {number} opslaan": "Save goal {number}",
    "Hoe belangrijk is doel {number}?": "How important is goal {number}?",
    "Hoe belangrijk is het nieuwe doel?": "How important is the new goal?",
    "Doel staat nu op plek {number}": "Goal is now in place {number}",
    "Dit doel staat nu op plek {number}.": "This goal is now in place {number}.",
    "regel {number}": "line {number}",
    "Regel {number} opslaan": "Save line {number}",
    "Keuze voor {name} opslaan": "Save choice for {name}",
    "Ja, stop met delen met {name}": "Yes, stop sharing with {name}",
    "Schrijf de dag zo: 31-12-2026. Laat leeg als het geen einddatum heeft.": (
        "Write the day like this: 31-12-2026 (day, month, year). Leave empty if there is "
        "no end date."
    ),
    "Deze datum bestaat niet. Schrijf de dag zo: 31-12-2026 (dag, maand, jaar).": (
        "This date does not exist. Write the day like this: 31-12-2026 (day, month, year)."
    ),
    "Deze pagina bestaat niet": "This page does not exist",
    "Financiën is alles over geld. Dagbesteding is wat je overdag doet, zoals werk of school.": (
        "Money means everything about money. Daytime activities are what you do in the "
        "day, such as work or school."
    ),
    "Misschien is het adres niet goed overgenomen. Kies een pagina in het menu.": (
        "Perhaps the address was not copied right. Choose a page in the menu."
    ),
    "Er is niets veranderd. Laad de pagina opnieuw en probeer het nog een keer.": (
        "Nothing was changed. Load the page again and try once more."
    ),
    "Je krijgt één bestand met alles wat in je kluis staat. Andere programma's voor zorg "
    "en hulp kunnen het lezen.": (
        "You get one file with everything in your vault. Other programs for care and "
        "support can read it."
    ),
    "Als je je kluis leegmaakt, is alles weg. Je plan, je doelen en je cijfers zijn dan "
    "weg. Ook wie wat mag zien is weg.": (
        "If you empty your vault, everything is gone. Your plan, your goals and your scores "
        "are gone. Who may see what is gone too."
    ),
    "Dat mag alleen als het zo geregeld is. Een machtiging geef je zelf. Een curator of "
    "mentor kiest de rechter. Een ouder met gezag heb je tot je 18 bent.": (
        "Only if it has been arranged. You give a power of attorney yourself. A judge "
        "chooses a curator or mentor. A parent with authority you have until you are 18."
    ),
    # _age.html, home.html, confirm.html: a child's consent by age (issue 17, docs/family.md)
    "Wie beslist over dit plan": "Who decides about this plan",
    "Je bent nog geen 12. Je ouders met gezag beslissen wie je plan mag zien.": (
        "You are not 12 yet. Your parents with parental authority decide who may see your plan."
    ),
    "Vanaf je 12e verjaardag beslis je mee. Dat is op {day}. Dan moeten jij en je ouder "
    "allebei ja zeggen.": (
        "From your 12th birthday you decide too. That is on {day}. Then you and your parent "
        "must both say yes."
    ),
    "Jij en je ouder met gezag beslissen samen wie je plan mag zien. Jullie moeten allebei "
    "ja zeggen. Jullie mogen allebei stoppen met delen.": (
        "You and your parent with parental authority decide together who may see your plan. "
        "You must both say yes. Either of you may stop sharing."
    ),
    "Vanaf je 16e verjaardag beslis jij alleen wie je plan mag zien. Dat is op {day}.": (
        "From your 16th birthday you alone decide who may see your plan. That is on {day}."
    ),
    "Vanaf je 16e verjaardag beslis jij alleen wie je plan mag zien. Je ouders zien alleen "
    "wat jij met hen deelt.": (
        "From your 16th birthday you alone decide who may see your plan. Your parents see "
        "only what you share with them."
    ),
    "{name} is nog geen 12. Jij beslist als ouder met gezag wie het plan van {name} mag zien.": (
        "{name} is not 12 yet. As a parent with parental authority you decide who may see "
        "{name}'s plan."
    ),
    "Vanaf de 12e verjaardag van {name} beslist {name} mee. Dat is op {day}. Wat alleen jij "
    "hebt gedeeld, stopt dan, tot {name} ook ja zegt.": (
        "From {name}'s 12th birthday {name} decides too. That is on {day}. What only you "
        "shared stops then, until {name} says yes as well."
    ),
    "{name} en jij beslissen samen wie het plan van {name} mag zien. Jullie moeten allebei "
    "ja zeggen. Jullie mogen allebei stoppen met delen.": (
        "{name} and you decide together who may see {name}'s plan. You must both say yes. "
        "Either of you may stop sharing."
    ),
    "Vanaf de 16e verjaardag van {name} beslist {name} alleen. Dat is op {day}. Jij ziet dan "
    "alleen wat {name} met je deelt.": (
        "From {name}'s 16th birthday {name} alone decides. That is on {day}. You then see "
        "only what {name} shares with you."
    ),
    "{name} is 16 of ouder en beslist nu alleen wie het plan mag zien. Je ziet alleen wat "
    "{name} met je deelt.": (
        "{name} is 16 or older and now alone decides who may see the plan. You see only "
        "what {name} shares with you."
    ),
    "Je kind is 16 of ouder en beslist nu alleen wie het plan mag zien. Je ziet alleen wat je "
    "kind met je deelt.": (
        "Your child is 16 or older and now alone decides who may see the plan. You see only "
        "what your child shares with you."
    ),
    "Je voorstel is opgeslagen. Het geldt pas als de ander ook ja zegt.": (
        "Your proposal has been saved. It only counts once the other says yes too."
    ),
    "Het voorstel geldt niet. Er wordt niets gedeeld.": (
        "The proposal does not count. Nothing is shared."
    ),
    "Wacht op een ja": "Waiting for a yes",
    "Jij hebt dit voorgesteld. Het geldt pas als de ander ook ja zegt.": (
        "You proposed this. It only counts once the other says yes too."
    ),
    "Voorstel intrekken": "Withdraw the proposal",
    "{name} stelt dit voor. Het geldt pas als jij ook ja zegt.": (
        "{name} proposes this. It only counts once you say yes too."
    ),
    "Ja, dat is goed": "Yes, that is fine",
    "Nee, liever niet": "No, rather not",
    "Dit is een voorstel. Het geldt pas als de ander ook ja zegt.": (
        "This is a proposal. It only counts once the other says yes too."
    ),
    "Je ouders beslissen": "Your parents decide",
    "Dit voorstel kennen we niet.": "We do not know this proposal.",
    # eenvoudig (issue 17)
    "Makkelijk lezen": "Easy reading",
    "Mijn plan, makkelijk lezen": "My plan, easy reading",
    "Naar het hele plan": "To the whole plan",
    "Lees voor": "Read aloud",
    "Pauze": "Pause",
    "Lees verder": "Go on reading",
    "Stop met voorlezen": "Stop reading aloud",
    "Hier staat je plan in korte zinnen.": "Here is your plan in short sentences.",
    "Je plan is bij stap {step} van {steps}.": "Your plan is at step {step} of {steps}.",
    "Dit wil ik": "This is what I want",
    "Het belangrijkste staat bovenaan.": "The most important is at the top.",
    "Je hebt nog geen doelen.": "You have no goals yet.",
    "Dit doe ik": "This is what I do",
    "Hier staat nog niets.": "Nothing here yet.",
    "Dit doen anderen": "This is what others do",
    "{name} doet dit:": "{name} does this:",
    "Zo gaat het": "How it is going",
    "Je geeft een cijfer van 1 tot 10.": "You give a score from 1 to 10.",
    "Een 10 is heel goed.": "A 10 is very good.",
    "Je cijfer is een {now}.": "Your score is {now}.",
    "Je cijfer bleef een {now}.": "Your score stayed {now}.",
    "Je cijfer ging van {before} naar {now}.": "Your score went from {before} to {now}.",
    "Je hebt nog geen cijfers.": "You have no scores yet.",
    "Iets veranderen?": "Change something?",
    "Dat doe je in het hele plan.": "You do that in the whole plan.",
    "Verander je plan": "Change your plan",
    "Geld": "Money",
    "Je huis": "Your home",
    "Mensen om je heen": "People around you",
    "Werk en school": "Work and school",
    "Je gezondheid": "Your health",
    "Je kinderen": "Your children",
    # family_plan.html (issue 17 item 3)
    "Ons gezinsplan": "Our family plan",
    "Je hoort niet bij een gezinsplan.": "You are not part of a family plan.",
    "Eén plan voor het hele gezin. Jij en {n} andere gezinsleden horen erbij.": (
        "One plan for the whole family. You and {n} other family members are part of it."
    ),
    "Je eigen plan blijft van jou. Wie je eigen doelen mag zien, kies je zelf.": (
        "Your own plan stays yours. You choose who may see your own goals."
    ),
    "Wie houdt het overzicht?": "Who keeps track?",
    "{name} is jullie regisseur.": "{name} is your family's coordinator (regisseur).",
    "Wat willen we samen?": "What do we want together?",
    "Er staan nog geen doelen van het gezin in.": "There are no family goals in it yet.",
    "Wat hebben we afgesproken?": "What did we agree?",
    "Wie: {who}": "Who: {who}",
    "Jouw eigen doelen in het gezinsplan": "Your own goals in the family plan",
    "Terug naar mijn plan": "Back to my plan",
    "Bekijk het plan van je gezin": "See your family's plan",
    "{name} mag ook het plan van jullie gezin zien.": "{name} may also see your family's plan.",
    # family_plan.html, family_share.html: who may see the family plan
    "Wie mag ons gezinsplan zien?": "Who may see our family plan?",
    "Dit kies je voor jezelf. De anderen in je gezin kiezen dit zelf.": (
        "You choose this for yourself. The others in your family choose for themselves."
    ),
    "{name} mag het plan van jullie gezin zien.": "{name} may see your family's plan.",
    "Stop het gezinsplan delen met {name}": "Stop sharing the family plan with {name}",
    "Door jou ziet nog niemand het plan van jullie gezin.": (
        "Nobody sees your family's plan because of you yet."
    ),
    "Er wacht een voorstel op een ja.": "A proposal is waiting for a yes.",
    "Bekijk het voorstel": "See the proposal",
    "Laat het gezinsplan zien aan": "Show the family plan to",
    "Je ouders met gezag beslissen wie het gezinsplan door jou mag zien.": (
        "Your parents with parental authority decide who may see the family plan through you."
    ),
    "Gestopt. Door jou ziet niemand dit meer.": "Stopped. Nobody sees this because of you now.",
    "{name} mag het plan van jullie gezin zien tot en met {day}.": (
        "{name} may see your family's plan until and including {day}."
    ),
    "Dus: wat jullie samen willen, de afspraken en de regisseur. En jouw eigen doelen in "
    "het gezinsplan.": (
        "So: what you want together, the agreements and the coordinator. And your own goals "
        "in the family plan."
    ),
    "{name} ziet niet de doelen van de anderen in je gezin. Dat kiezen zij zelf.": (
        "{name} does not see the goals of the others in your family. They choose that themselves."
    ),
    "Dit gezinsplan kennen we niet.": "We do not know this family plan.",
    # log.html: the family plan's own log
    "Wie keek naar ons gezinsplan": "Who looked at our family plan",
    "Hier zie je wie het plan van jullie gezin heeft bekeken of veranderd. Het nieuwste staat "
    "bovenaan.": (
        "Here you see who viewed or changed your family's plan. The newest is at the top."
    ),
    "Naar je eigen logboek": "To your own log",
    "Wie keek naar het plan van jullie gezin?": "Who looked at your family's plan?",
}


def language_of(cookie: str | None) -> str:
    """The page's language from the switch's cookie: English when chosen, else Dutch."""
    return "en" if cookie == "en" else "nl"


def translator(lang: str) -> Callable[..., str]:
    """``_(phrase, **fields)`` for one language; fields are filled in after the lookup."""
    table = ENGLISH if lang == "en" else {}

    def translate(phrase: str, **fields: object) -> str:
        text = table.get(phrase, phrase)
        return text.format(**fields) if fields else text

    return translate
