"""Training recipes: how each method is trained (data, objective wrapper, published configuration).

Recipes use the methods (:mod:`geocorr.methods`) and the generic trainer (:mod:`geocorr.training`);
methods never import them. ``geocorr train --method M`` loads the recipe module registered in
:mod:`geocorr.commands.train`.
"""
