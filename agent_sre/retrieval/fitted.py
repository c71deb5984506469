"""Calibration coefficients fitted on the generator's val split. Do not edit: regenerate with

    python -m agent_sre.retrieval.calibrate --per-pattern 4 --seed 0
"""

RAG = {'features': ['score', 'margin', 'cosine', 'lexical', 'known_words', 'stranger'],
 'weights': [0.432488, 1.552786, 0.653383, -0.289808, 0.478646, -0.477354],
 'bias': 4.157295,
 'mean': [0.80075, 0.287193, 0.71115, 0.967151, 0.82852, 0.103004],
 'scale': [0.156263, 0.141615, 0.194575, 0.148415, 0.323606, 0.303964]}
FEWSHOT = {'features': ['agreement',
              'margin',
              'top_similarity',
              'mean_similarity',
              'known_words',
              'stranger'],
 'weights': [0.529135, 0.923612, 0.625112, 0.116328, 0.874209, -0.622641],
 'bias': 4.087262,
 'mean': [0.929833, 0.874025, 0.827797, 0.77519, 0.844758, 0.103004],
 'scale': [0.14754, 0.257754, 0.166733, 0.159608, 0.318281, 0.303964]}
