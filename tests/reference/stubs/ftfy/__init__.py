def fix_text(text):
    return text
