"""Check a commit message: a subject of at most 72 characters, then a blank line, then the body.

Usage: ``python scripts/check_commit_msg.py MESSAGE_FILE`` (what pre-commit's ``commit-msg``
stage passes: ``.git/COMMIT_EDITMSG``). Git's comment lines (``#``) and the diff that
``git commit -v`` appends are ignored. Merge, revert, fixup and squash subjects that git
writes itself are accepted as they are. Exits 1 with the reason, otherwise 0. The rule is in
CONTRIBUTING.md, "Commit messages".
"""
import sys

MAX_SUBJECT = 72
#: Subjects git or its tools write: not the author's to shorten.
GENERATED = ("Merge ", "Revert \"", "fixup! ", "squash! ", "amend! ")
#: ``git commit -v`` appends the diff below this line; git drops everything after it.
SCISSORS = "# ------------------------ >8 ------------------------"


def problems(message):
    """The reasons ``message`` breaks the rule (an empty list when it keeps it)."""
    lines = []
    for line in message.splitlines():
        if line.startswith(SCISSORS):
            break
        if not line.startswith("#"):
            lines.append(line.rstrip())
    while lines and not lines[0].strip():
        lines.pop(0)
    if not lines:
        return ["the message is empty"]
    subject = lines[0]
    if subject.startswith(GENERATED):
        return []
    found = []
    if len(subject) > MAX_SUBJECT:
        found.append(f"the subject has {len(subject)} characters, at most {MAX_SUBJECT}: put the "
                     "detail in the body, after a blank line")
    if subject.endswith("."):
        found.append("the subject ends with a period")
    if len(lines) > 1 and lines[1].strip():
        found.append("the second line must be blank (the subject is one line)")
    return found


def main(argv):
    if len(argv) != 2:
        print(f"usage: {argv[0]} MESSAGE_FILE", file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as f:
        found = problems(f.read())
    for reason in found:
        print(f"commit message: {reason} (CONTRIBUTING.md, \"Commit messages\")", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
