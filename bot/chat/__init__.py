"""What every chat front end shares; Slack and Discord keep only parsing and rendering.

surface.py    ChatSurface: status message, product posts, summary
progress.py   ChatProgress: follows one campaign into a surface
followers.py  Followers: the followers of a front end, by campaign id
start.py      check, open a place, start, take the place back on refusal
access.py     who may use the bot, see a campaign, and cancel or retry it
serve.py      serve until SIGINT/SIGTERM, then hand the campaigns over
links.py      where a file too big to upload can be fetched
text.py       the plain-text pieces both render (progress line, captions, ...)
config.py     id lists and base URLs from the environment
"""
