"""Phrase banks for the ticket simulator (data only; the logic lives in ``policies.simulator``).

Each topic has subject and body templates with ``{slot}`` fields filled from ``SLOTS`` (plus ``order``,
``amount`` and ``days``, drawn as numbers). Wording deliberately overlaps between topics in places ("account",
"charge", "order") so that routing needs more than one keyword.
"""

from __future__ import annotations

SLOTS: dict[str, list[str]] = {
    "product": ["Arbiter Cloud", "the mobile app", "the desktop client", "the API", "the dashboard", "Pro Suite"],
    "plan": ["Starter", "Team", "Business", "Enterprise", "Pro"],
    "method": ["credit card", "PayPal", "bank transfer", "Apple Pay", "invoice"],
    "error": ["500 Internal Server Error", "timeout", "error 0x80070005", "blank screen", "sync failed",
              "connection refused", "SSL handshake error"],
    "device": ["iPhone", "Android phone", "Windows laptop", "MacBook", "Chromebook", "iPad"],
    "carrier": ["DHL", "UPS", "FedEx", "the postal service", "DPD"],
    "item": ["headset", "router", "starter kit", "replacement cable", "docking station", "smart badge"],
    "month": ["January", "February", "March", "April", "May", "June", "July", "August", "September"],
    "seats": ["5", "10", "25", "50", "200"],
}

TOPICS: dict[str, dict[str, list[str]]] = {
    "billing": {
        "subjects": ["Charged twice", "Refund request", "Wrong amount on invoice", "Question about my bill",
                     "Payment failed", "Unexpected charge of ${amount}", "Invoice for {month}", "Cancel auto-renewal"],
        "bodies": [
            "I was charged ${amount} twice on my {method} this month.",
            "My invoice for {month} shows ${amount} but my {plan} plan should be cheaper.",
            "Please refund the last payment, I cancelled before the renewal date.",
            "The payment with my {method} keeps getting declined although the card is valid.",
            "I need a corrected invoice with our VAT number for {month}.",
            "Why was I billed ${amount} after I downgraded?",
            "Can you switch my billing from {method} to bank transfer?",
        ],
    },
    "technical": {
        "subjects": ["App keeps crashing", "Error when saving", "{product} is down", "Sync not working",
                     "Bug in {product}", "Getting {error}", "Integration broken", "Very slow performance"],
        "bodies": [
            "{product} crashes every time I open it on my {device}.",
            "Since the last update I get a {error} when I save a file.",
            "Our API calls started failing with {error} about {days} hours ago.",
            "Data does not sync between {product} and my {device}.",
            "The dashboard takes minutes to load and then shows a {error}.",
            "The webhook integration stopped sending events yesterday.",
            "After reinstalling {product} on my {device} the export button does nothing.",
        ],
    },
    "account": {
        "subjects": ["Cannot log in", "Password reset not arriving", "Locked out of my account",
                     "Change email address", "Two-factor problem", "Delete my profile", "Add a user to my account"],
        "bodies": [
            "I cannot log in, it says my password is wrong even after a reset.",
            "The password reset email never arrives in my inbox.",
            "My account was locked after too many attempts on my {device}.",
            "Please change the email address on my profile to my new work address.",
            "I lost my phone and cannot pass the two-factor check anymore.",
            "How do I close my account and remove my profile?",
            "I need to transfer account ownership to a colleague.",
        ],
    },
    "shipping": {
        "subjects": ["Where is my order?", "Parcel not delivered", "Order #{order} delayed", "Damaged package",
                     "Tracking not updating", "Return label needed", "Wrong item received"],
        "bodies": [
            "My order #{order} was supposed to arrive {days} days ago.",
            "The {carrier} tracking for order #{order} has not updated in a week.",
            "The {item} arrived damaged, the box was crushed.",
            "I received a {item} but ordered something else (order #{order}).",
            "I want to return the {item}, please send a return label.",
            "{carrier} says the parcel was delivered but I never got it.",
            "Can you ship order #{order} to a different address?",
        ],
    },
    "sales": {
        "subjects": ["Pricing for {seats} seats", "Upgrade to {plan}", "Request a quote", "Volume discount?",
                     "Enterprise plan question", "Demo request", "Compare plans"],
        "bodies": [
            "We are a team of {seats} and would like a quote for the {plan} plan.",
            "What is the price difference between {plan} and Enterprise?",
            "Do you offer discounts for non-profits or annual payment?",
            "I would like to upgrade our company to the {plan} plan next month.",
            "Could someone book a demo of {product} for our team?",
            "We plan to buy {seats} more licenses, who can I talk to?",
        ],
    },
    "legal": {
        "subjects": ["Data deletion request (GDPR)", "Notice from my lawyer", "Contract dispute",
                     "Request for personal data", "Terms of service question", "Formal complaint"],
        "bodies": [
            "Under GDPR I request a copy of all personal data you hold about me.",
            "My lawyer will contact you about the breach of our contract.",
            "I demand the deletion of all my data within 30 days as required by law.",
            "Your terms of service changed without notice, this is a breach of contract.",
            "We received a court summons related to your service and need your legal department.",
        ],
    },
}

LEGAL_THREATS: list[str] = [
    "If this is not solved I will take legal action.",
    "My lawyer is already informed.",
    "I am considering suing your company.",
    "I will report you to the consumer protection authority and my attorney.",
]

GREETINGS: dict[str, list[str]] = {
    "en": ["Hi,", "Hello,", "Dear support,", "", "Hey team,"],
    "es": ["Hola,", "Buenos dias,", "Estimado soporte,"],
    "de": ["Hallo,", "Guten Tag,", "Sehr geehrtes Support-Team,"],
    "fr": ["Bonjour,", "Madame, Monsieur,", "Salut,"],
}

CLOSERS: dict[str, list[str]] = {
    "en": ["Thanks.", "Regards", "Thank you!", "", "Please help."],
    "es": ["Gracias.", "Saludos", ""],
    "de": ["Danke.", "Viele Gruesse", ""],
    "fr": ["Merci.", "Cordialement", ""],
}
