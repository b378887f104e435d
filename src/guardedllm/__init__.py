"""guardedllm."""
