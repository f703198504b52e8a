"""Attacks: try to bring an erased concept back (concept inversion, UnlearnDiffAtk, P4D, Ring-A-Bell, paraphrases,
seeds). `attack(bundle, goal, config, run) -> AttackResult`; they import `core` and the model layer (`models`)
only, and the judge that decides success comes in the `Goal` from the caller (see `attacks.registry`)."""
