"""The browser viewer (`tensorfields view`): the Gradio app (`app.py`) and its frame rendering
(`frames.py`: orbit camera, render modes)."""
