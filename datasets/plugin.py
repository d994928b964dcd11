"""The built-in dataset recipes, registered like any third-party plugin."""

from xdplug.api import hookimpl


@hookimpl
def register_datasets(register):
    from xdplug.testing.synthetic import SyntheticRecipe

    from .files import FilesRecipe
    from .movielens import ML1MGenres, ML1MToML100K, ML100KGenres
    from .synthetic import SyntheticScaleRecipe

    register(ML100KGenres)
    register(ML1MToML100K)
    register(ML1MGenres)
    register(SyntheticRecipe)
    register(FilesRecipe)
    register(SyntheticScaleRecipe)

    from .amazon import AmazonRecipe
    from .amazon2023 import Amazon2023Recipe
    from .douban import DoubanRecipe

    register(AmazonRecipe)
    register(Amazon2023Recipe)
    register(DoubanRecipe)
