"""Calibration coefficients fitted on the generator's val split. Do not edit: regenerate with

    python -m agent_sre.retrieval.calibrate --per-pattern 4 --seed 0
"""

RAG = {'features': ['score', 'margin', 'cosine', 'lexical', 'known_words', 'stranger'],
 'weights': [0.425704, 1.840705, 0.695834, -0.404835, 0.09479, -0.681598],
 'bias': 3.70553,
 'mean': [0.79754, 0.272953, 0.706846, 0.965973, 0.82852, 0.103004],
 'scale': [0.155064, 0.142071, 0.192604, 0.148928, 0.323606, 0.303964]}
FEWSHOT = {'features': ['agreement',
              'margin',
              'top_similarity',
              'mean_similarity',
              'known_words',
              'stranger'],
 'weights': [1.050028, 0.619686, 0.477242, 0.392587, 0.437003, -0.781608],
 'bias': 3.712253,
 'mean': [0.922078, 0.862226, 0.822454, 0.76798, 0.84905, 0.103004],
 'scale': [0.155972, 0.263995, 0.164384, 0.156284, 0.316971, 0.303964]}
