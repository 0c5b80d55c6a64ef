"""OpenAI Whisper models for the plugin: weights obtained offline (CTranslate2 conversion)."""
