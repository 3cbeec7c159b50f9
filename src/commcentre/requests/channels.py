"""Which channel a request is answered on (pure functions, no I/O).

A reply or a delay notice goes back the way the request came: on the channel of
the message that opened it, else the channel its legal basis is exchanged on.
Dir. (EU) 2023/977 Art. 12: SIENA (our `europol` channel) is the default channel
for exchanges under the directive; SIS alerts and the arrest warrants they carry
(FD 2002/584, the Nordic Arrest Warrant) are exchanged between SIRENE Bureaux
(Reg. (EU) 2018/1862 Art. 7 and 8).
"""

from commcentre.messages.schemas import Channel
from commcentre.requests.deadlines import DIRECTIVE_2023_977


def default_channel(legal_basis: str) -> Channel:
    """The channel requests under `legal_basis` are exchanged on when nothing else says."""
    return Channel.EUROPOL if legal_basis == DIRECTIVE_2023_977 else Channel.SIRENE


def channel_of_adapter(adapter: str) -> Channel | None:
    """The channel a partner's adapter speaks (`europol` -> SIENA-like), if it names one."""
    try:
        return Channel(adapter)
    except ValueError:
        return None


def channel_of_request(channel: str | None, legal_basis: str) -> Channel:
    """A stored request's channel; rows without one fall back to their legal basis."""
    return Channel(channel) if channel is not None else default_channel(legal_basis)
