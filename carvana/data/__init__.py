"""Photos and masks: Kaggle's layout, reading and resizing them, repainting cars, safe zips."""
