"""The experiment engine. It never imports pytest; heavy libraries load lazily."""
