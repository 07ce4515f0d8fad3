"""An SMTP server on loopback for tests/it/mail_event.rs: aiosmtpd's, which
nobody here wrote, so that flowdesk's mail is checked by someone else's
reading of SMTP and MIME.

Usage: server.py PORT. Prints `ready` once it listens on 127.0.0.1:PORT, then
one JSON line per mail it accepts: the envelope, the headers as Python's
`email` package decodes them (RFC 2047 words in the subject decoded), the
raw Subject line as it came, and each text part. It runs until its standard
input closes (the test ends or drops it).

A recipient whose local part is `refused` is answered
`550 5.1.1 no such user here`.
"""

import email
import email.policy
import email.utils
import json
import sys

from aiosmtpd.controller import Controller


class Handler:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.split("@")[0] == "refused":
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        message = email.message_from_bytes(raw, policy=email.policy.default)
        raw_subject = next(
            (line for line in raw.decode("ascii", "replace").splitlines() if line.lower().startswith("subject:")),
            "",
        )
        parts = {}
        for part in message.walk():
            if part.get_content_maintype() == "text":
                parts[part.get_content_type()] = part.get_content()
        date = email.utils.parsedate_to_datetime(message["Date"]) if message["Date"] else None
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "from": str(message["From"]),
            "to": str(message["To"]),
            "cc": str(message["Cc"]) if message["Cc"] else None,
            "subject": str(message["Subject"]),
            "raw_subject": raw_subject,
            "message_id": str(message["Message-ID"]),
            "date": date.timestamp() if date else None,
            "mime_version": str(message["MIME-Version"]),
            "content_type": message.get_content_type(),
            "parts": parts,
            "defects": [str(d) for d in message.defects],
        }
        print(json.dumps(record), flush=True)
        return "250 2.0.0 OK queued"


def main():
    controller = Controller(Handler(), hostname="127.0.0.1", port=int(sys.argv[1]))
    controller.start()
    print("ready", flush=True)
    sys.stdin.read()
    controller.stop()


if __name__ == "__main__":
    main()
