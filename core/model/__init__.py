"""The model contract shared by training and the live bot: features, file format, prediction."""
