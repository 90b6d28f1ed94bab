"""Generate the binary demo documents for the Ledgerly demo knowledge base.

Writes two files into ``kb/demo/documents/`` (next to this script):

* ``security-and-sso.docx`` - built with python-docx (Heading 1/2/3, List Bullet,
  numbered steps and one table).
* ``release-notes-2026.pdf`` - a text-based PDF built with fpdf2, so the text can be
  extracted by pypdf.

All document text is embedded in this script. The libraries are only needed to
regenerate the files, so install them in a throwaway virtualenv rather than the
project environment::

    python3.11 -m venv /tmp/pdfvenv
    /tmp/pdfvenv/bin/pip install fpdf2 python-docx
    /tmp/pdfvenv/bin/python kb/demo/generate_binary_docs.py

The output is plain ASCII text; keep it that way, because the PDF uses the core
Helvetica font (Latin-1 only).
"""

from datetime import UTC, datetime
from pathlib import Path

from docx import Document
from docx.shared import Cm, Pt
from fpdf import FPDF
from fpdf.enums import XPos, YPos

OUT_DIR = Path(__file__).resolve().parent / "documents"
DOCX_NAME = "security-and-sso.docx"
PDF_NAME = "release-notes-2026.pdf"

# ---------------------------------------------------------------------------
# security-and-sso.docx
# ---------------------------------------------------------------------------
# Each block is (kind, payload):
#   "h1" / "h2" / "h3" -> heading text
#   "p"                -> paragraph text
#   "bullets"          -> list of strings (List Bullet style)
#   "steps"            -> list of strings (numbered paragraphs)
#   "table"            -> list of rows; the first row is the header

SECURITY_BLOCKS: list[tuple[str, str | list[str] | list[list[str]]]] = [
    ("h1", "Security and Single Sign-On"),
    (
        "p",
        "Ledgerly Inc. protects your financial data with single sign-on, two-factor "
        "authentication, encryption, a detailed audit log and a choice of data regions. "
        "Security settings are managed by the Owner and Admins under Settings > Security.",
    ),
    ("h2", "Single sign-on (SSO)"),
    (
        "p",
        "SAML 2.0 single sign-on is available on the Enterprise plan. Sign in with Google "
        "is available on every plan. SSO is configured under "
        "Settings > Security > Single sign-on.",
    ),
    ("h3", "Supported identity providers"),
    (
        "bullets",
        [
            "Okta - guided setup from the Okta app catalog, plus SCIM provisioning.",
            "Microsoft Entra ID (formerly Azure Active Directory) - guided setup, plus SCIM "
            "provisioning.",
            "Google Workspace - SAML setup using a custom SAML app.",
            "OneLogin - SAML setup using the generic SAML connector.",
            "Any other identity provider that supports SAML 2.0 - generic setup with a "
            "metadata URL or XML file.",
        ],
    ),
    ("h3", "Step 1: Verify your email domain"),
    (
        "p",
        "Before you can turn on SSO, you must prove that your company owns its email "
        "domain. A workspace can have up to 10 verified domains.",
    ),
    (
        "steps",
        [
            "Go to Settings > Security > Domains and click Add domain.",
            "Enter the domain, for example example.com. Ledgerly shows a DNS TXT record "
            "that starts with ledgerly-verification=.",
            "Add the TXT record at your DNS provider.",
            "Return to Ledgerly and click Verify. DNS changes can take up to 48 hours to "
            "be visible.",
        ],
    ),
    ("h3", "Step 2: Ledgerly service provider details"),
    ("p", "Your identity provider will ask for the following values:"),
    (
        "bullets",
        [
            "ACS (Assertion Consumer Service) URL: https://app.ledgerly.example/sso/saml/acs",
            "Entity ID (Audience URI): https://app.ledgerly.example/sso/saml/metadata/"
            "<workspace-id>. Your workspace ID is shown on the Single sign-on page.",
            "NameID format: email address.",
            "Required attributes: email, firstName and lastName.",
        ],
    ),
    ("h3", "Set up SSO with Okta"),
    (
        "steps",
        [
            "In the Okta Admin Console, go to Applications > Browse App Catalog, search for "
            "Ledgerly and click Add integration.",
            "Enter your Ledgerly workspace ID and click Done.",
            "On the Sign On tab, copy the Metadata URL.",
            "In Ledgerly, go to Settings > Security > Single sign-on, choose Okta and paste "
            "the Metadata URL.",
            "Assign the Ledgerly app to the people or groups who need access in Okta.",
            "Click Test SSO in Ledgerly and sign in with an assigned Okta account.",
        ],
    ),
    ("h3", "Set up SSO with Microsoft Entra ID (Azure AD)"),
    (
        "steps",
        [
            "In the Microsoft Entra admin center, go to Enterprise applications and create "
            "a new non-gallery application named Ledgerly.",
            "Open Single sign-on and choose SAML.",
            "Under Basic SAML Configuration, set the Identifier (Entity ID) and the Reply URL "
            "to the Ledgerly values from Step 2.",
            "Download the Federation Metadata XML file.",
            "In Ledgerly, go to Settings > Security > Single sign-on, choose Microsoft Entra "
            "ID and upload the XML file.",
            "Assign users or groups to the application, then click Test SSO in Ledgerly.",
        ],
    ),
    ("h3", "Enforcing SSO"),
    (
        "p",
        "After a successful test sign-in, turn on Require SSO. Members whose email address "
        "is on a verified domain must then sign in through your identity provider, and their "
        "Ledgerly passwords stop working. The Owner keeps a password sign-in as a break-glass "
        "option in case the identity provider is unavailable; this sign-in always requires "
        "two-factor authentication. Members with email addresses outside your verified "
        "domains, such as external accountants, keep signing in with a password and 2FA.",
    ),
    ("h3", "SCIM user provisioning"),
    (
        "p",
        "Enterprise workspaces using Okta or Microsoft Entra ID can turn on SCIM "
        "provisioning. New users assigned in the identity provider are created in Ledgerly "
        "with the Viewer role by default. Users who are unassigned or deactivated in the "
        "identity provider lose access to Ledgerly within 5 minutes.",
    ),
    ("h3", "Session length"),
    (
        "p",
        "By default, a Ledgerly session lasts 12 hours. Enterprise workspaces can set the "
        "session length to any value from 1 to 72 hours under Settings > Security > Sessions.",
    ),
    ("h2", "Two-factor authentication (2FA)"),
    (
        "p",
        "Two-factor authentication is available to every user on every plan. Each member "
        "turns it on for their own account under Profile > Security > Two-factor "
        "authentication. Supported methods:",
    ),
    (
        "bullets",
        [
            "Authenticator apps (TOTP) that generate 6-digit codes every 30 seconds.",
            "Passkeys and hardware security keys (WebAuthn / FIDO2).",
            "SMS codes are not supported, because text messages can be intercepted.",
        ],
    ),
    (
        "p",
        "When you turn on 2FA, Ledgerly gives you 10 single-use recovery codes. You can "
        "generate a new set at any time; doing so invalidates the old codes.",
    ),
    ("h3", "Requiring 2FA for all members"),
    (
        "p",
        "On the Growth and Enterprise plans, the Owner or an Admin can turn on Settings > "
        "Security > Require two-factor authentication. Members who have not set up 2FA get "
        "a 7-day grace period. After that, they must set up 2FA at their next sign-in before "
        "they can open anything in the workspace. Members who sign in with SSO are exempt, "
        "because your identity provider handles multi-factor authentication.",
    ),
    ("h3", "Lost 2FA device"),
    (
        "p",
        "Use one of your recovery codes to sign in, then set up 2FA again. If you have lost "
        "your recovery codes too, ask the Owner or an Admin to reset your 2FA under "
        "Settings > Team > [member] > Reset 2FA. If the Owner is locked out, contact Ledgerly "
        "support; identity verification for Owners takes up to 3 business days.",
    ),
    ("h3", "Passwords and sign-in protection"),
    (
        "bullets",
        [
            "Passwords must be at least 12 characters long.",
            "New passwords are checked against a list of known breached passwords.",
            "After 10 failed sign-in attempts, the account is locked for 15 minutes.",
            "Ledgerly emails you whenever your account is used from a new device.",
        ],
    ),
    ("h3", "IP allowlisting"),
    (
        "p",
        "Enterprise workspaces can restrict access to specific networks under Settings > "
        "Security > IP allowlist. You can add up to 50 IP ranges in CIDR notation. The "
        "allowlist applies to both the web app and the API.",
    ),
    ("h2", "Encryption"),
    (
        "bullets",
        [
            "In transit: all connections use TLS 1.2 or higher, with TLS 1.3 preferred. "
            "HTTP Strict Transport Security (HSTS) is enabled.",
            "At rest: databases, file attachments and backups are encrypted with AES-256.",
            "Backups: continuous backups with point-in-time recovery, kept for 35 days.",
            "Secrets: API keys are stored only as hashes; webhook signing secrets are encrypted.",
            "Bank connections: Ledgerly never stores your online banking password and uses "
            "read-only access tokens.",
            "Customer-managed encryption keys (CMEK) are available on the Enterprise plan.",
        ],
    ),
    ("h2", "Data retention"),
    (
        "bullets",
        [
            "While your subscription is active, your data is kept for as long as you keep it.",
            "Deleted draft invoices, customers and attachments go to Trash and can be "
            "restored for 30 days.",
            "After a subscription ends, workspace data is kept for 90 days and then "
            "permanently deleted. Backups are purged within a further 35 days.",
            "Trial workspaces that never subscribe are deleted 60 days after the trial ends.",
            "Audit log entries are kept for 90 days on Growth and 2 years on Enterprise.",
        ],
    ),
    ("h2", "Audit log"),
    (
        "p",
        "The audit log records security-relevant activity in your workspace. It is "
        "available on the Growth plan (90-day retention) and the Enterprise plan (2-year "
        "retention); Starter workspaces do not have an audit log. The Owner and Admins can "
        "view it under Settings > Security > Audit log, filter it by member, event type and "
        "date, and export it as CSV. Each entry shows the time (UTC), the member, their IP "
        "address, the action and the affected record. Recorded events include:",
    ),
    (
        "bullets",
        [
            "Sign-ins, failed sign-ins and account lockouts.",
            "Invitations, member removals and role changes.",
            "API keys created, rotated or revoked, and webhook endpoint changes.",
            "Changes to SSO, 2FA, session and IP allowlist settings.",
            "Voided invoices, credit notes, write-offs and approval bypasses.",
            "Imports, exports, full workspace exports and GDPR actions.",
            "Plan, seat and payment method changes.",
        ],
    ),
    (
        "p",
        "Enterprise workspaces can also stream audit events in near real time to an HTTPS "
        "endpoint or an Amazon S3 bucket, for use in a SIEM tool.",
    ),
    ("h2", "Data residency"),
    (
        "p",
        "You choose where your workspace data is stored when you create the workspace. All "
        "customer data, file attachments and backups stay in the chosen region.",
    ),
    (
        "table",
        [
            ["Region", "Data center location", "Available on"],
            ["United States", "Virginia, USA", "All plans"],
            ["European Union", "Frankfurt, Germany", "All plans"],
            ["United Kingdom", "London, UK", "Enterprise only"],
            ["Australia", "Sydney, Australia", "Enterprise only"],
        ],
    ),
    (
        "p",
        "Support tickets and transactional emails (such as invoice emails and password "
        "resets) are processed in the United States for all regions.",
    ),
    (
        "p",
        "The region cannot be changed from the app. Enterprise customers can ask their "
        "Customer Success Manager to move a workspace to another region. A migration takes "
        "up to 10 business days and includes a scheduled read-only window of up to 4 hours.",
    ),
    ("h2", "Compliance and reporting security issues"),
    (
        "p",
        "Ledgerly Inc. completes a SOC 2 Type II audit every year and an independent "
        "penetration test every year. Growth and Enterprise customers can download the "
        "latest SOC 2 report under NDA, and any customer can sign our Data Processing "
        "Agreement, under Settings > Legal. To report a vulnerability, email "
        "security@ledgerly.example. We acknowledge reports within 2 business days.",
    ),
]


def build_docx(path: Path) -> None:
    """Write the security guide as a .docx file using real Word styles."""
    doc = Document()
    doc.core_properties.title = "Security and Single Sign-On"
    doc.core_properties.author = "Ledgerly Inc."
    doc.core_properties.subject = "Ledgerly Help Center"
    doc.styles["Normal"].font.size = Pt(11)

    heading_levels = {"h1": 1, "h2": 2, "h3": 3}
    for kind, payload in SECURITY_BLOCKS:
        if kind in heading_levels:
            doc.add_heading(str(payload), level=heading_levels[kind])
        elif kind == "p":
            doc.add_paragraph(str(payload))
        elif kind == "bullets":
            for item in payload:
                doc.add_paragraph(str(item), style="List Bullet")
        elif kind == "steps":
            # Explicit numbers instead of the "List Number" style: python-docx's default
            # template shares one numbering sequence, so each new list would not restart at 1.
            for number, item in enumerate(payload, start=1):
                para = doc.add_paragraph(f"{number}. {item}")
                para.paragraph_format.left_indent = Cm(0.63)
        elif kind == "table":
            rows = [list(row) for row in payload]
            table = doc.add_table(rows=len(rows), cols=len(rows[0]))
            table.style = "Table Grid"
            for r, row in enumerate(rows):
                for c, value in enumerate(row):
                    cell = table.cell(r, c)
                    cell.text = value
                    if r == 0:
                        for run in cell.paragraphs[0].runs:
                            run.bold = True
        else:
            raise ValueError(f"unknown block kind: {kind}")
    doc.save(str(path))


# ---------------------------------------------------------------------------
# release-notes-2026.pdf
# ---------------------------------------------------------------------------
# Each release is (heading, release line, [(section, [bullet, ...]), ...]).

RELEASE_INTRO = (
    "This document lists the changes to Ledgerly released in 2026. Ledgerly is a hosted "
    "service, so every workspace is updated automatically; you do not need to install "
    "anything. Version numbers mark feature releases. Patch releases (for example 4.2.1) "
    "contain fixes only."
)

RELEASES: list[tuple[str, str, list[tuple[str, list[str]]]]] = [
    (
        "Version 4.0 (January 2026)",
        "Released January 13, 2026",
        [
            (
                "New",
                [
                    "Redesigned dashboard with a 90-day cash-flow chart and an overdue "
                    "invoices widget.",
                    "API v2 is generally available at https://api.ledgerly.example/v2, with "
                    "cursor-based pagination on all list endpoints (up to 100 items per page).",
                    "Custom invoice number prefixes of up to 10 characters under Settings > "
                    "Invoicing > Numbering.",
                ],
            ),
            (
                "Changed",
                [
                    "API v1 is deprecated. It will be switched off on September 30, 2026; "
                    "after that date v1 requests return HTTP 410 Gone.",
                    "The Bookkeeper role is renamed Accountant. Its permissions are unchanged.",
                    "The Growth plan now includes 10 seats (previously 8) at the same price.",
                ],
            ),
            (
                "Fixed",
                [
                    "Invoice PDFs cut off line item descriptions longer than 500 characters.",
                    "Payment reminders were sometimes sent twice for invoices due on a Sunday.",
                ],
            ),
        ],
    ),
    (
        "Version 4.1 (February 2026)",
        "Released February 10, 2026",
        [
            (
                "New",
                [
                    "Passkeys and hardware security keys (WebAuthn) can be used for "
                    "two-factor authentication.",
                    "United Kingdom (London) data region for Enterprise workspaces.",
                    "New bank sync error code LDG-422 for banks that ask for extra "
                    "verification, with an in-app prompt to complete it.",
                ],
            ),
            (
                "Changed",
                [
                    "Growth support now includes live chat 24 hours a day, Monday to Friday.",
                    "Invoice reminder emails include a Pay now button.",
                ],
            ),
            (
                "Fixed",
                [
                    "Due dates were shown one day early for workspaces in time zones ahead "
                    "of UTC+12.",
                ],
            ),
        ],
    ),
    (
        "Version 4.2 (March 2026)",
        "Released March 17, 2026",
        [
            (
                "New",
                [
                    "Scheduled exports can be delivered to an Amazon S3 bucket or an SFTP "
                    "server (Enterprise).",
                    "Keyboard shortcut Ctrl+Enter (Cmd+Enter on Mac) sends the current invoice.",
                    "Possible duplicates filter under Banking > Transactions.",
                ],
            ),
            (
                "Changed",
                [
                    "CSV import limit raised from 20,000 to 50,000 rows per file on Growth "
                    "and Enterprise. The Starter limit stays at 5,000 rows.",
                    "Webhook events now get up to 8 delivery attempts over about 45 hours "
                    "(previously 5 attempts over 6 hours).",
                    "Idempotency keys are stored for 24 hours (previously 1 hour).",
                ],
            ),
            (
                "Fixed",
                [
                    "Column mapping templates did not remember the selected date format.",
                ],
            ),
        ],
    ),
    (
        "Version 4.2.1 (March 2026)",
        "Released March 26, 2026 - patch release",
        [
            (
                "Fixed",
                [
                    "Prorated seat charges were rounded up to whole dollars instead of to "
                    "the nearest cent.",
                    "Some Canadian banks created duplicate transactions after a reconnect.",
                    "The J and K shortcuts skipped items in filtered lists.",
                ],
            ),
        ],
    ),
    (
        "Version 4.3 (April 2026)",
        "Released April 21, 2026",
        [
            (
                "New",
                [
                    "Australia (Sydney) data region for Enterprise workspaces.",
                    "Multi-level approval workflows: Enterprise workspaces can require up to "
                    "3 approval levels. Growth keeps a single approval level.",
                    "Custom roles for Enterprise, up to 20 per workspace.",
                    "Audit log streaming to an HTTPS endpoint or Amazon S3 bucket (Enterprise).",
                ],
            ),
            (
                "Changed",
                [
                    "Enterprise audit log retention extended from 1 year to 2 years.",
                    "Approval requests now expire after 14 days (previously 30 days) and "
                    "return the invoice to Draft.",
                ],
            ),
            (
                "Known issues",
                [
                    "On some mobile email apps, the link in approval emails opens the "
                    "Dashboard instead of the request. Workaround: open Approvals from the "
                    "left menu.",
                ],
            ),
        ],
    ),
    (
        "Version 4.4 (June 2026)",
        "Released June 9, 2026",
        [
            (
                "New",
                [
                    "Growth and Enterprise workspaces can invoice in 40 currencies "
                    "(previously 25).",
                    "Recurring invoices can be paused and resumed manually.",
                    "Customer-managed encryption keys (CMEK) for Enterprise workspaces.",
                ],
            ),
            (
                "Changed",
                [
                    "Test-mode API requests have their own limit of 60 requests per minute "
                    "and no longer count toward the live rate limit.",
                ],
            ),
            (
                "Fixed",
                [
                    "The approval email link issue from version 4.3 is resolved.",
                ],
            ),
        ],
    ),
]


class ReleaseNotesPDF(FPDF):
    """FPDF subclass that adds a running footer with the page number."""

    def footer(self) -> None:
        self.set_y(-15)
        self.set_font("Helvetica", "I", 8)
        self.cell(0, 10, f"Ledgerly Release Notes 2026 - page {self.page_no()}", align="C")


def build_pdf(path: Path) -> None:
    """Write the 2026 release notes as a text-based PDF."""
    pdf = ReleaseNotesPDF(format="A4")
    pdf.set_title("Ledgerly Release Notes 2026")
    pdf.set_author("Ledgerly Inc.")
    # A fixed creation date keeps regenerated files stable.
    pdf.set_creation_date(datetime(2026, 6, 9, tzinfo=UTC))
    pdf.set_auto_page_break(auto=True, margin=20)
    pdf.set_margins(20, 20, 20)
    pdf.add_page()

    def line(text: str, height: float, style: str = "", size: int = 11) -> None:
        pdf.set_font("Helvetica", style, size)
        pdf.multi_cell(0, height, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    line("Ledgerly Release Notes 2026", 10, "B", 20)
    line("Ledgerly Inc.", 7, "", 11)
    pdf.ln(3)
    line(RELEASE_INTRO, 6)

    for heading, released, sections in RELEASES:
        if pdf.get_y() > pdf.h - pdf.b_margin - 45:
            # Do not leave a version heading stranded at the bottom of a page.
            pdf.add_page()
        pdf.ln(5)
        line(heading, 9, "B", 15)
        line(released, 6, "I", 10)
        for section, bullets in sections:
            pdf.ln(1)
            line(section, 7, "B", 12)
            for bullet in bullets:
                pdf.set_font("Helvetica", "", 11)
                pdf.set_x(pdf.l_margin + 4)
                pdf.cell(5, 6, "-")
                pdf.multi_cell(0, 6, bullet, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    pdf.output(str(path))


def main() -> None:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    build_docx(OUT_DIR / DOCX_NAME)
    build_pdf(OUT_DIR / PDF_NAME)
    print(f"Wrote {OUT_DIR / DOCX_NAME}")  # noqa: T201
    print(f"Wrote {OUT_DIR / PDF_NAME}")  # noqa: T201


if __name__ == "__main__":
    main()
