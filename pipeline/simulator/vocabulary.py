"""Words the simulator writes with, most common first (low temperature uses only the head)."""

from __future__ import annotations

# A word list reads better as text than as 424 quoted items.
_TEXT = """
    the of and to in a is that for it as was with be by on not he this are or his from at
    which but have an they you were her she there been one all we their has would when if
    more can said who will about what out up new also time people year years city report
    said first two after over other state many most some could these than then its into only
    now like just government public new market week month day local news data work school
    team plan company council police health water energy service support group since made
    while where under during between three last still before through because part high long
    same much each well back even both three show set place world life home number way house
    change point case system program question government increase process result level
    policy family research service business center member national community development
    economic percent decision area project industry growth price students country officials
    economy agency study analysis source early major recent several another including among
    according announced expected continued reported noted added described confirmed reviewed
    significant important different available current local regional federal international
    private small large strong clear full open final key main direct specific common global
    budget funding investment revenue costs jobs workers employers customers residents
    voters leaders experts analysts scientists researchers managers engineers teachers
    doctors transport housing climate weather rainfall coast river bridge road rail airport
    harbor election campaign legislation court ruling appeal hearing committee board
    minister mayor technology software network platform device battery factory supply chain
    shipping trade exports imports tariffs inflation interest rates lending credit banks
    shares stocks bonds hospital clinic patients treatment vaccine trial results evidence
    safety risk response season match league coach players fans stadium record title victory
    defeat injury festival museum gallery theater music film artist author series exhibition
    audience quarter annual forecast estimate target outlook demand output capacity margin
    profit loss sales orders inventory production delivery contract partnership merger
    acquisition however meanwhile furthermore therefore moreover although despite whereas
    overall steadily sharply gradually slightly quickly slowly broadly largely widely
    closely nearly rising falling stable uncertain cautious optimistic modest robust
    resilient volatile renewable solar wind storage grid emissions carbon efficiency
    infrastructure upgrade survey sample respondents majority minority share trend pattern
    signal measure factor neighborhood district county province region territory border
    corridor downtown suburb schedule deadline timeline phase stage milestone launch rollout
    pilot review audit framework guideline standard regulation compliance oversight
    transparency accountability proposal amendment draft vote majority coalition opposition
    debate consensus agreement
"""
WORDS: tuple[str, ...] = tuple(_TEXT.split())
