"""Collections declared in a recipe's `[collections]`: BEIR folders, TREC files, query splits.

`declared` holds the declarations, `read` reads their files, `check` checks them, `dataset` makes
an ir_datasets dataset of one split, and `source` answers, for any declared name, what
`harness.data` asks of a collection: is it there, what identifies it, what does it hold.
Nothing here imports the rest of `harness.data`.
"""
