"""Calibration coefficients fitted on the generator's val split. Do not edit: regenerate with

    python -m agent_sre.retrieval.calibrate --per-pattern 4 --seed 0
"""

RAG = {'features': ['score', 'margin', 'cosine', 'lexical', 'known_words', 'stranger'],
 'weights': [0.6855, 1.97092, 0.674091, 0.418619, 0.234982, -0.220044],
 'bias': 3.61602,
 'mean': [0.796821, 0.270178, 0.703092, 0.970888, 0.81854, 0.104762],
 'scale': [0.150985, 0.154708, 0.189863, 0.138619, 0.320838, 0.306246]}
FEWSHOT = {'features': ['agreement',
              'margin',
              'top_similarity',
              'mean_similarity',
              'known_words',
              'stranger'],
 'weights': [0.257617, 0.776219, 1.274026, 0.070917, 0.18936, -0.436576],
 'bias': 3.1767,
 'mean': [0.920257, 0.856341, 0.825926, 0.773099, 0.836762, 0.104762],
 'scale': [0.157877, 0.276558, 0.169316, 0.160691, 0.316552, 0.306246]}
