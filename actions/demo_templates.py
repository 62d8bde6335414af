"""The words demo mail is made of: names, companies, and the subject and body templates per category."""

from __future__ import annotations

# --- Who writes, and what about -------------------------------------------------------------------

FIRST_NAMES = [
    "Grace", "Ben", "Chen", "Marco", "Ana", "Liam", "Priya", "José", "Fatima", "Noah", "Ingrid", "Kwame",
    "Yuki", "Olga", "Mateo", "Aisha", "Lars", "Zoë", "Ravi", "Hannah", "Tomás", "Mei", "Omar", "Sofia",
]  # fmt: skip
LAST_NAMES = [
    "Hopper", "Okafor", "Wei", "Rossi", "Lima", "O'Brien", "Natarajan", "García", "Haddad", "Schmidt",
    "Lindqvist", "Mensah", "Tanaka", "Petrova", "Fernández", "Khan", "Berg", "Dubois", "Iyer", "Novak",
]  # fmt: skip
COMPANIES = [
    ("Northwind Traders", "northwind.example"),
    ("Bluepeak Logistics", "bluepeak.example"),
    ("Juniper Health", "juniperhealth.example"),
    ("Orbital Foods", "orbitalfoods.example"),
    ("Kestrel Bank", "kestrel.example"),
    ("Lumen Studio", "lumenstudio.example"),
    ("Harbor & Finch", "harborfinch.example"),
    ("Tessellate GmbH", "tessellate.example"),
    ("Alder Robotics", "alder.example"),
    ("Maple Civic Services", "maplecivic.example"),
]
NEWSLETTERS = [
    ("Infra Weekly", "digest@infraweekly.example", "infrastructure"),
    ("The SaaS Letter", "news@saasletter.example", "software businesses"),
    ("Support Ops Digest", "hello@supportops.example", "customer support"),
]
PRODUCT = "Acme Cloud"
SERVICES = ["the checkout API", "the login service", "the EU region", "the reporting dashboard", "the webhooks"]
PAGES = ["onboarding guide", "status page", "security FAQ", "API documentation", "pricing FAQ"]
REPORTS = ["quarterly usage report", "uptime report", "SLA summary", "seat audit"]
ITEMS = ["a monitoring licence", "two new laptops", "a conference booth", "a penetration test", "a backup appliance"]
CITIES = [("Lyon", "12 Rue de la République"), ("Leeds", "4 Park Row"), ("Graz", "Herrengasse 7")]
TIMEZONES = [" CET", " UTC", " EST", " GMT", ""]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]

# --- Templates: subject and body per category. Each reads as its category to the heuristics. ----
# The {placeholders} are the words actions.demo_mail draws for each message ({first}, {company}, {invoice}...).

SIGNATURE = "\n\n{sign}\n{first}"
TEMPLATES: dict[str, list[tuple[str, str]]] = {
    "support": [
        ("How do I export reports to CSV?", "How do I export the monthly report to CSV? I can only find the PDF "
         "option in {product}."),
        ("Read-only access for a colleague", "Is it possible to give {colleague} read-only access to our "
         "{product} workspace? They should see the dashboards without changing anything."),
        ("Account locked", "Since this morning I get \"account locked\" when I try to sign in. I have not "
         "changed anything on my side. What should I do?"),
        ("Two-factor codes not arriving", "The two-factor codes for my account are not arriving by SMS. "
         "Is there another way to sign in?"),
        ("Forgot my password", "I forgot my password and the sign-in page will not let me in. How can I reset it?"),
        ("Password change", "How do I change my password? I would like to pick a stronger one."),
        ("Support hours?", "What are your support hours? We are in {city} and want to know when we can reach "
         "someone."),
        ("Copy of invoice {invoice}", "Could you send me a copy of invoice {invoice}? Our accounting team cannot "
         "find it."),
    ],
    "outage": [
        ("URGENT: {service} returns 502 for all customers", "Since {since} every request to {service} fails with "
         "a 502 Bad Gateway. Our customers cannot place orders. Please call me back as soon as you can."),
        ("Production down: {service} not responding", "Since {since}, {service} has been down in "
         "production. Nothing loads for any of our users."),
        ("Outage of {service}?", "We are seeing a full outage of {service} since {since}. Is there an incident "
         "on your side?"),
    ],
    "meeting": [
        ("Quarterly review: can we meet {weekday} at {hour}:00?", "Could we hold the quarterly review this "
         "{weekday} at {hour}:00{zone} for an hour? I would like to go through the roadmap with you."),
        ("Demo of the new reporting features", "We would like to see a demo of the new reporting features. "
         "Would {date_long} at {hour}:30{zone} work for a call? {colleague} from our side will join too."),
        ("Meeting request: contract renewal", "Can we schedule a meeting on {iso_date} at {hour}:00{zone} to "
         "discuss the renewal of our contract? 30 minutes should be enough."),
    ],
    "task": [
        ("Can someone update the {page} by Friday?", "The {page} still describes the old sign-up flow. Please "
         "update it by Friday, the new flow went live this week."),
        ("Please prepare the {report} for {company}", "Please prepare the {report} for {company} by {deadline}. "
         "They asked for it in yesterday's review; last quarter's numbers are attached."),
        ("Typo in the welcome email", "Could someone correct the typo in the welcome email (\"recieve\")? We "
         "need it fixed by the end of this week."),
    ],
    "approval": [
        ("Approval needed: {item} ({currency} {amount})", "Please approve the purchase of {item}, {currency} "
         "{amount} per year. The quote is attached. PO-{po}."),
        ("Sign-off for {item}", "Could you sign off on {item}? The total is ${amount}, reference PO-{po}."),
        ("PO-{po}: {item}", "The order for {item} ({amount} EUR) needs your approval before Friday."),
    ],
    "billing": [
        ("Charged twice for {month}", "We were charged twice for {month} ({invoice} and {invoice2}). Could you "
         "refund one of them?"),
        ("Question about invoice {invoice}", "Invoice {invoice} lists {seats} seats, but we only have 18 users. "
         "Can you correct the amount?"),
        ("Payment failed for order {order}", "Our card payment for order {order} failed, but the money was taken "
         "from our account. What happens now?"),
    ],
    "other": [
        ("Thanks!", "Thanks for sorting this out yesterday, everything works again."),
        ("New office address from {next_month}", "Just to let you know: from {next_month} our office moves to "
         "{street}, {city}. Nothing else changes for our account."),
        ("Great webinar", "The webinar last week was really useful. Looking forward to the next one."),
    ],
}  # fmt: skip
FOLLOW_UPS = {
    "support": "Any news on this? I still have the same problem.",
    "billing": "Any news on this? It has been a week.",
    "task": "Just checking: can someone confirm this will be done by Friday?",
}
GREETINGS = ["Hi,", "Hello,", "Hello team,", "Hi there,", "Dear support team,"]
SIGN_OFFS = ["Thanks,", "Best,", "Kind regards,", "Regards,", "Many thanks,"]
