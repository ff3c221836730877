"""Shared by every test folder: this folder is on sys.path, so `import tool_harness` works."""
