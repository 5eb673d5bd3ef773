"""English stop words: the function words whose density separates running prose from page chrome.

Prose is glued together by articles, pronouns, prepositions, auxiliaries and conjunctions (typically a
third or more of its tokens); menus, link lists, credits and tag clouds are mostly content words and
names. Chrome detection measures a line's share of these words (jusText's cue); other stages may use
the list to ignore words that carry no topic. Entries are lower-case tokens as `normalize.words`
yields them, so contractions appear split ("don't" gives "don" and "t").
"""

from __future__ import annotations

_WORDS = """
    a about above across after afterwards again against all almost alone along already also although
    always am among amongst an and another any anybody anyhow anyone anything anyway anywhere are
    aren around as at back be became because become becomes becoming been before beforehand behind
    being below beside besides between beyond both but by can cannot could couldn did didn do does
    doesn doing don done down during each either else elsewhere enough even ever every everybody
    everyone everything everywhere few for former formerly from further had hadn has hasn have haven
    having he hence her here hereafter hereby herein hers herself him himself his how however i if in
    indeed instead into is isn it its itself just least less like likely ll m many may maybe me
    meanwhile might mine more moreover most mostly much must my myself namely neither never
    nevertheless next no nobody none nor not nothing now nowhere of off often on once one only onto
    or other others otherwise ought our ours ourselves out over own per perhaps quite rather re really
    s same several shall she should shouldn since so some somebody somehow someone something sometime
    sometimes somewhere still such t than that the their theirs them themselves then thence there
    thereafter thereby therefore therein these they this those though through throughout thus to
    together too toward towards under unless until up upon us very via was wasn we were weren what
    whatever when whence whenever where whereas whereby wherein whether which while whither who
    whoever whole whom whose why will with within without won would wouldn yet you your yours
    yourself yourselves ve d let lets got get gets getting go goes going gone made make makes
    making said say says see seen seem seemed seems take takes took use used using way well went
"""

ENGLISH_STOPWORDS: frozenset[str] = frozenset(_WORDS.split())
