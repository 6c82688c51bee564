"""Test helpers: real servers, real data, and a runner that acts like libxl."""
